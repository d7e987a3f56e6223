"""What every part of the benchmark shares: constants, options, the model set-up, a row."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.servers import ROOT

RESULTS_FILE = ROOT / "load_tests" / "RESULTS.md"
NAIVE_APP = ROOT / "load_tests" / "naive_baseline" / "app.py"
CONCURRENCIES = (1, 16, 64)
RAW_BATCHES = (1, 8, 32, 64, 128)
#: BentoML service names in service.py (``@bentoml.service(name=...)``), to tell workers apart.
API_SERVICE_NAME = "har"
MODEL_SERVICE_NAME = "har-model"
BATCHED_METHOD = "predict_proba"
GRPC_PATH = "/har.v1.ActivityRecognition/Predict"
#: The Open Inference Protocol's gRPC inference method (``inference.GRPCInferenceService``).
V2_GRPC_PATH = "/inference.GRPCInferenceService/ModelInfer"
STANDIN_CLASSES = ["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"]
#: Targets (printed beside the figures).
# Targets (issue "Speed", 2 cores, load generator on the same machine): served windows/s at
# c=64 as a fraction of the raw model's ceiling, latency bounds, start-up seconds.
TARGET_SPEEDUP = 20.0
TARGET_CEILING_FRACTION = {"HTTP /predict": 0.57, "gRPC Predict": 0.75}
TARGET_P50_C1_MS = 5.0
TARGET_P99_C64_MS = {"HTTP /predict": 150.0, "gRPC Predict": 100.0}
TARGET_RECORDING_FRACTION = 0.90
TARGET_MONITORING_RATIO = 0.95
#: Issue 28: keeping windows for labelling (``HAR_SAMPLE_DIR``) costs at most 5 % at c=64.
TARGET_SAMPLING_RATIO = 0.95
TARGET_STARTUP_S = 10.0
CLIENT_TIMEOUT_S = 30
#: Cell names (rows are looked up by them when targets are checked).
RAW_CELL = "raw model (CompiledModel, XLA, 1 thread)"
RAW_END_CELL = RAW_CELL + " again, after the other stages"
#: The raw ceilings of every runtime and thread count: ``(cell, runtime, threads)``.
RAW_ONNX_CELL = "raw model (OnnxModel, ONNX Runtime, 1 thread)"
RAW_ONNX_2_CELL = "raw model (OnnxModel, ONNX Runtime, 2 threads)"
RAW_XLA_2_CELL = "raw model (CompiledModel, XLA, 2 threads)"
RAW_RUNTIME_CELLS = (
    (RAW_ONNX_CELL, "onnx", 1),
    (RAW_ONNX_2_CELL, "onnx", 2),
    (RAW_XLA_2_CELL, "xla", 2),
)
RAW_2_THREADS_CELL = "raw model (CompiledModel, XLA, 2 threads: chunks of a recording at once)"
#: Windows of the benchmark's recording (one hour at 50 Hz, windows of 200, hop 100).
RECORDING_WINDOWS = 1799
NAIVE_CELL = "naive /predict (FastAPI, model.predict)"
RECORDING_CELL = "HTTP /predict_recording (1 h at 50 Hz)"
#: The recording cell once more on a server with one intra-op thread (the default is 2).
RECORDING_1_THREAD_CELL = RECORDING_CELL + " [HAR_TF_INTRA_OP_THREADS=1]"
HTTP_CELL = "HTTP /predict"
GRPC_CELL = "gRPC Predict"
AB_PROTOCOLS = (HTTP_CELL, GRPC_CELL)
#: HTTP /predict, one window per request, cycling through the bundled held-out windows (a
#: realistic mix: the sampling switch keeps the model's real uncertain share plus the random
#: share, where the single benchmark window is uncertain and every one is kept).
MIXED_CELL = "HTTP /predict, held-out windows in turn"
#: The Open Inference Protocol (V2) cells, one window per request like the cells above, at
#: these concurrencies (those of ``--concurrency`` that are listed here).
V2_REST_CELL = "V2 REST infer (binary tensors)"
V2_GRPC_CELL = "V2 gRPC ModelInfer (raw_input_contents)"
V2_CONCURRENCIES = (1, 64)
AB_SUFFIX = "(interleaved A/B)"


@dataclass(frozen=True)
class AbSwitch:
    """A feature the interleaved on/off rounds compare (``--ab``).

    Attributes:
        name: the switch (``monitoring``, ``tracing``, ``sampling``, ``placement``), also in
            the row names
            ``"{protocol} [{name} on|off] (interleaved A/B)"``.
        title: the report section's heading.
        differs: how the two servers differ (Markdown, completes "Two servers run at once, ...").
        target: the least median per-round on/off ratio per protocol at c=64 (None: no target,
            the ratio is reported).
        target_source: where the target comes from.
        cells: what each round measures on each side (c=64), in order.
    """

    name: str
    title: str
    differs: str
    target: float | None = None
    target_source: str = ""
    cells: tuple[str, ...] = AB_PROTOCOLS


#: The switches ``--ab`` can compare, in the order they run. Apart from its switch, both
#: sides of each are the same server (monitoring on for tracing and sampling).
AB_SWITCHES: dict[str, AbSwitch] = {
    s.name: s
    for s in (
        AbSwitch(
            "monitoring",
            "Monitoring overhead",
            "one with `HAR_MONITORING=1` and one with `=0`",
            TARGET_MONITORING_RATIO,
            "the monitoring issue",
        ),
        AbSwitch(
            "tracing",
            "Tracing overhead",
            "both with monitoring on, one with `HAR_TRACING=1` "
            "(`HAR_TRACING_SAMPLE_RATE=1`, every request traced, OpenTelemetry's default batch "
            "exporter sending OTLP/HTTP to a receiver in the benchmark's process) and one with "
            "`HAR_TRACING=0`",
        ),
        AbSwitch(
            "sampling",
            "Sampling overhead (windows kept for labelling)",
            "both with monitoring on, one with `HAR_SAMPLE_DIR` set (default sampling settings) "
            "and one without; the HTTP /predict and gRPC Predict cells send the benchmark's one "
            "window, which the bundled model is unsure of, so every window is kept (the worst "
            f"case); the cell `{MIXED_CELL}` sends the bundled held-out windows in turn (the "
            "usual case: the model's real uncertain share plus the random share is kept)",
            TARGET_SAMPLING_RATIO,
            "issue 28",
            (HTTP_CELL, GRPC_CELL, MIXED_CELL),
        ),
        AbSwitch(
            "placement",
            "Model placement (in the API worker vs its own service)",
            "both with monitoring on, one with `HAR_MODEL_PLACEMENT=in-process` (the model on "
            "ONNX Runtime inside the API worker) and one with `=service` (the model service's "
            "worker, the default)",
        ),
    )
}
#: Stages ``--stages`` can pick (all by default), in the order they run.
STAGES = ("raw", "naive", "serve", "recording", "startup")
STARTUP_CELL = "process start → /readyz"


@dataclass
class Row:
    """One measured cell of the results table.

    Attributes:
        cell: what was measured (``raw model``, ``naive /predict``, ``HTTP /predict``...).
        load: ``c=16`` (requests in flight) or ``batch=32``.
        throughput: windows per second (one window per request for the request cells).
        p50_ms, p99_ms: latency percentiles (None where it does not apply).
        errors: failed requests during the measurement (None where it does not apply).
        mean_batch: requests per batch the model service formed (None if not batched).
        cpu: percent of one core per process group while measured.
        note: anything else worth printing.
    """

    cell: str
    load: str
    throughput: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int | None = None
    mean_batch: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    note: str = ""


@dataclass
class Options:
    """Command-line options (see ``load_tests/bench/__main__.py``); durations in seconds."""

    quick: bool
    duration: int
    warmup: int
    raw_runs: int
    raw_run_s: float
    uploads: int
    monitoring: str
    ab_rounds: int
    ab_duration: int
    only_ab: bool
    results: Path | None
    profile: Path | None
    keep_tmp: bool
    command: str
    stages: tuple[str, ...] = STAGES
    startups: int = 3
    concurrencies: tuple[int, ...] = CONCURRENCIES
    #: The switches of the interleaved on/off rounds (:data:`AB_SWITCHES`), in run order.
    ab: tuple[str, ...] = ()


@dataclass
class AbResult:
    """One switch's interleaved on/off rounds.

    Attributes:
        switch: its name (:data:`AB_SWITCHES`).
        rows: the median row of each (protocol, side).
        lines: the per-round Markdown table with the on/off ratio of each round.
        paired: per protocol, the median of the per-round on/off ratios.
        notes: what else was seen (spans received, windows kept), Markdown list items.
    """

    switch: str
    rows: list[Row]
    lines: list[str]
    paired: dict[str, float]
    notes: list[str] = field(default_factory=list)


@dataclass
class ModelSetup:
    """The model under test: its store tag, ``.keras`` file and card, and where it came from.

    ``model_store`` is the ``models`` folder of the BentoML home that holds it.
    """

    tag: str
    model_path: Path
    card_path: Path
    source: str
    model_store: Path
