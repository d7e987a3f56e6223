"""One typed settings object, read from ``HAR_*`` environment variables.

Nothing else reads a ``HAR_*`` variable: the rest of the project is given the settings it
needs (the serving assembly only writes the tags it resolved for the workers it starts).
Bad values fail at start-up with pydantic's message naming the variable.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Root of the source tree (the folder holding ``pyproject.toml``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: The bundled reference model and its card.
PRETRAINED_DIR = PROJECT_ROOT / "models" / "pretrained"
DEFAULT_MODEL_NAME = "har-cnn-bilstm"
#: The embedded MLflow store (SQLite) and its artifacts, git-ignored.
MLRUNS_DIR = PROJECT_ROOT / "mlruns"
#: ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` (groups: name, alias, version).
MODEL_URI_PATTERN = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))")


class Settings(BaseSettings):
    """Service and tooling settings. Every field is ``HAR_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="HAR_", extra="ignore")

    model_tag: str = Field(
        f"{DEFAULT_MODEL_NAME}:latest",
        description="BentoML model tag the service serves (NAME:VERSION or NAME:latest).",
    )
    grpc_port: int = Field(
        50051, ge=0, le=65535, description="gRPC port, 0-65535 (0 disables gRPC)."
    )
    grpc_host: str = Field("0.0.0.0", description="Interface the gRPC server binds.")
    max_batch_size: int = Field(
        128,
        ge=1,
        le=4096,
        description="Largest batch the model sees, 1-4096 windows: larger batches raise"
        " throughput under load but make each call, and so the wait of the requests in "
        "it, longer.",
    )
    max_latency_ms: int = Field(
        1000,
        ge=1,
        description="Adaptive batching latency budget of the model service, "
        "milliseconds (>= 1): a call that would outlive it is cancelled (503), so a "
        "lower value sheds load sooner but fails more requests at peaks.",
    )
    api_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="API worker processes, 1-64, each serving HTTP and gRPC: more use more "
        "cores and keep answering while one restarts, but each takes memory and, on a "
        "machine with few cores, CPU from the model worker (docs/operations.md).",
    )
    coalesce_inflight: int = Field(
        1,
        ge=0,
        description="Model-service calls an API worker keeps open (>= 0); concurrent "
        "requests beyond that are merged into one call (0: one call per request): fewer"
        " open calls make larger batches with less per-call overhead, more let calls "
        "overlap with smaller batches.",
    )
    coalesce_fill: bool = Field(
        True,
        description="Right after a model call returned, hold the next one (at most as "
        "long as that call took) until a third of the rows in the loop have queued, so "
        "that the API worker and the model overlap (har/serving/coalescing.py): fuller "
        "batches under load, for up to one call's time of extra wait.",
    )
    runtime: Literal["auto", "onnx", "tensorflow"] = Field(
        "auto",
        description="What runs the model: `auto` = ONNX Runtime when the model's ONNX export "
        "passed its parity check at import (the card says so), else TensorFlow; `onnx` = "
        "refuse to start without that evidence; `tensorflow` = TensorFlow/XLA always. "
        "`GET /model` says which one serves and why.",
    )
    model_placement: Literal["service", "in-process"] = Field(
        "service",
        description="Where the model runs: `service` = its own BentoML service (the model "
        "worker), batching the calls of every API worker; `in-process` = in each API "
        "worker on ONNX Runtime, in a thread of its own: no hop between processes, one "
        "process less (refused at start if the model would serve on TensorFlow).",
    )
    onnx_threads: int = Field(
        1, ge=1, le=64, description="ONNX Runtime intra-op threads of one model call, 1-64."
    )
    xla: bool = Field(
        True,
        description="Compile the model with XLA (padded batch sizes): faster per window"
        " once compiled, for the time each batch size takes to compile at start.",
    )
    tf_intra_op_threads: int = Field(
        2,
        ge=1,
        le=64,
        description="TensorFlow intra-op threads of the model worker, 1-64, and how "
        "many chunks of a whole recording it runs at once: more shorten a recording's "
        "model time when cores are free, but take CPU from the API workers on a small "
        "machine.",
    )
    warmup: Literal["background", "blocking"] = Field(
        "background",
        description="When the model worker compiles its XLA batch sizes (one per padded size): "
        "`background` = after it reports ready (a shape-generic function serves "
        "meanwhile: ready sooner, slower per window for the first seconds), `blocking` "
        "= before it reports ready (ready later, full speed from the first request).",
    )
    tracing: bool = Field(
        False,
        description="OpenTelemetry spans: BentoML's HTTP request spans (and its "
        "X-BentoML-Request-ID header), one span per gRPC call and one per model call, in "
        "one trace per request across the API and model workers, exported with OTLP/HTTP "
        "(protobuf) to HAR_TRACING_ENDPOINT. Off: no span is made (BentoML's tracing "
        "middleware is not installed), which saves CPU on every request.",
    )
    tracing_endpoint: str = Field(
        "http://127.0.0.1:4318/v1/traces",
        description="OTLP/HTTP traces URL spans are exported to with HAR_TRACING=1 (an "
        "OpenTelemetry Collector, Jaeger or Tempo; path `/v1/traces`).",
    )
    tracing_sample_rate: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Share of requests traced with HAR_TRACING=1, 0-1 (parent-based: a "
        "request that arrives with a sampled W3C `traceparent` is traced): lower costs "
        "less CPU and export traffic under load.",
    )
    fault_injection: bool = Field(
        False,
        description="Tests only: a gRPC call with the metadata `x-har-fault: internal` "
        "or `unavailable` fails its model call that way (har/grpc/observability.py), to "
        "check metrics and alerts end to end. Never on in production.",
    )
    allow_untested_bentoml: bool = Field(
        False,
        description="Start even where a patch of BentoML internals that correctness relies "
        "on (client errors as 4xx, bounded metric labels, graceful stop) does not match the "
        "installed BentoML (another version, or changed internals): each is then applied if "
        "what it replaces has the expected shape, skipped otherwise, with a WARNING. Off: such "
        "a start is refused (docs/bentoml-patches.md).",
    )
    max_windows_per_request: int = Field(
        4096,
        ge=1,
        description="Windows accepted in one prediction request (>= 1; a whole "
        "recording may have 16 times that); more are refused as an input error.",
    )
    max_request_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Largest accepted request body, bytes (>= 1024); larger: 413.",
    )
    align_tolerance_s: float = Field(
        0.02,
        gt=0,
        description="Seconds (> 0) beyond which accelerometer and gyroscope samples are"
        " not paired: larger pairs more samples of loosely synchronised sensors, at the"
        " cost of pairing samples further apart in time.",
    )
    max_fill_samples: int = Field(
        2,
        ge=0,
        description="Gaps of at most this many missing samples (>= 0) are interpolated;"
        " longer gaps split the recording: larger keeps more windows, with more "
        "invented data in them.",
    )
    max_resampled_samples: int = Field(
        4_000_000,
        ge=1000,
        description="Samples the resampler may allocate for one recording (>= 1000; its"
        " finest grid, 6 float64 channels: 48 bytes each, ~192 MB at the default); "
        "more: 400.",
    )
    body_read_timeout_s: float = Field(
        20.0, gt=0, description="Seconds (> 0) a client has to send a whole body; slower: 408."
    )
    stream_idle_timeout_s: float = Field(
        60.0, gt=0, description="Seconds (> 0) a gRPC stream may wait for its next chunk."
    )
    stream_max_duration_s: float = Field(
        12 * 3600.0, gt=0, description="Seconds (> 0) one gRPC stream may stay open."
    )
    uncertain_below: float = Field(
        0.9,
        gt=0,
        lt=1,
        description="A window whose confidence is below this (between 0 and 1, exclusive) "
        "counts as uncertain: in the drift report, har_drift_uncertain_share and the "
        "windows kept for labelling with HAR_SAMPLE_DIR (how the default was chosen: docs/calibration.md).",
    )
    calibration: bool = Field(
        True,
        description="Serve calibrated probabilities when the model card carries an applied "
        "temperature (0: the model's raw softmax; answers say which in 'calibrated').",
    )
    # monitoring (har/monitoring): profiles, drift, the sample kept for labelling
    profile_dir: Path = Field(
        Path("logs/whylogs"), description="Folder the whylogs profiles are written to."
    )
    profile_interval_s: float = Field(
        300.0,
        gt=0,
        description="Seconds (> 0) one whylogs profile covers before it rolls over: "
        "shorter gives finer drift history, with more files.",
    )
    profile_queue_size: int = Field(
        20_000,
        ge=1,
        description="Windows (>= 1) waiting for the monitoring writer before new ones "
        "are dropped (each holds its 200x6 float32 samples: ~4.8 KB, ~96 MB at the "
        "default).",
    )
    monitoring: bool = Field(True, description="Profile served windows with whylogs (drift).")
    sample_dir: Path | None = Field(
        None,
        description="Keep a bounded sample of served windows for labelling here, with why each "
        "was kept (unset: off; docs/calibration.md). Exported by `python -m har samples export`.",
    )
    sample_max_mb: float = Field(
        64.0,
        gt=0,
        description="Megabytes (> 0) of kept windows per API worker (~4.8 KB a window); the "
        "oldest are deleted beyond it (har_samples_dropped_total).",
    )
    sample_random_share: float = Field(
        0.01, ge=0, le=1, description="Share (0..1) of all served windows kept at random."
    )
    sample_drift_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Share (0..1) of the windows served while the recent interval's input "
        "drifted (the last drift refresh) that is kept.",
    )
    sample_flush_s: float = Field(
        5.0, gt=0, description="Seconds (> 0) between writes of kept windows to HAR_SAMPLE_DIR."
    )
    drift_threshold: float = Field(
        0.7,
        gt=0,
        le=1,
        description="Hellinger distance (above 0, at most 1) above which a feature has "
        "drifted: lower flags smaller shifts, with more false alarms.",
    )
    drift_min_rows: int = Field(
        100, ge=1, description="Rows (>= 1) a drift comparison needs; fewer: insufficient_data."
    )
    drift_every_s: float = Field(
        60.0,
        ge=0,
        description="Seconds between the service's own drift computations, which refresh the "
        "har_drift_* gauges (0: the gauges follow GET /monitoring/drift calls instead).",
    )
    drift_window_s: float = Field(
        900.0, gt=0, description="Seconds of served windows the har_drift_* gauges describe."
    )
    profile_flush_s: float = Field(
        5.0,
        ge=0,
        description="Seconds (>= 0) between writes of a worker's open profile interval "
        "to its one partial file (a hard kill loses at most about this much; 0: only at"
        " roll-over).",
    )
    report_cache_s: float = Field(
        10.0,
        ge=0,
        description="Seconds (>= 0) the service keeps a rendered drift report per "
        "interval (0: no cache).",
    )
    # timeline (har/domain/timeline.py): how window predictions become the activity segments
    smoothing: Literal["viterbi", "none"] = Field(
        "viterbi",
        description="Timeline smoothing: 'viterbi' (HMM with a switching penalty, then a "
        "minimum segment duration) or 'none' (each window's argmax).",
    )
    switch_penalty: float = Field(
        6.0,
        ge=0,
        description="Nats (>= 0) an activity change costs in the Viterbi pass: higher "
        "gives fewer, longer segments (0: raw argmax).",
    )
    min_segment_s: float = Field(
        0.0,
        ge=0,
        description="Smoothed segments shorter than this many seconds (>= 0) join a "
        "neighbour (0: off).",
    )

    # access
    api_tokens: SecretStr = Field(
        SecretStr(""),
        description="Comma-separated bearer tokens. Set (or HAR_API_TOKENS_FILE): every HTTP "
        "endpoint but the probes and the docs page, and every gRPC method but health, needs "
        "`Authorization: Bearer <token>`. Empty: no access control.",
    )
    api_tokens_file: Path | None = Field(
        None,
        description="File of bearer tokens, one per line (blank lines and # comments "
        "ignored), merged with HAR_API_TOKENS.",
    )
    metrics_auth: bool = Field(
        False, description="With tokens set, /metrics needs a token too (default: open)."
    )
    grpc_tls_cert: Path | None = Field(
        None,
        description="PEM certificate chain of the gRPC server: set with HAR_GRPC_TLS_KEY, "
        "gRPC speaks TLS only.",
    )
    grpc_tls_key: Path | None = Field(None, description="PEM private key of HAR_GRPC_TLS_CERT.")
    grpc_tls_client_ca: Path | None = Field(
        None,
        description="PEM CA certificates: gRPC clients must present a certificate one of "
        "them signed (mutual TLS). Needs HAR_GRPC_TLS_CERT.",
    )

    # lifecycle
    mlflow_tracking_uri: str = Field(
        f"sqlite:///{MLRUNS_DIR / 'mlflow.db'}",
        description="MLflow tracking and registry URI: a database URI (embedded, artifacts in "
        "an 'artifacts' folder beside the file) or an MLflow server (http://HOST:PORT).",
    )
    mlflow_experiment: str = Field("har", description="MLflow experiment of the runs logged.")
    model_uri: str | None = Field(
        None,
        description="Registry model to serve: models:/NAME@ALIAS or models:/NAME/VERSION "
        "(wins over model_tag; resolved by `python -m har ensure-model`).",
    )
    gate_accuracy_tolerance: float = Field(
        0.01, ge=0, le=1, description="Promotion gate: accepted accuracy drop vs the holder, 0-1."
    )
    gate_macro_f1_tolerance: float = Field(
        0.01, ge=0, le=1, description="Promotion gate: accepted macro-F1 drop vs the holder, 0-1."
    )

    # shadow model (har/shadow): scored on the served windows, off the response path
    shadow_model_tag: str | None = Field(
        None, description="BentoML tag of a shadow model scored on the same windows."
    )
    shadow_model_uri: str | None = Field(
        None,
        description="Registry shadow model (models:/NAME@ALIAS or models:/NAME/VERSION), "
        "resolved to HAR_SHADOW_MODEL_TAG by `python -m har ensure-model --shadow`.",
    )
    shadow_queue_windows: int = Field(
        4096,
        ge=1,
        description="Windows (>= 1) waiting for the shadow before new ones are dropped "
        "(~4.8 KB each).",
    )
    shadow_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Deadline of one shadow call, seconds (> 0); its windows are dropped after it.",
    )
    shadow_inflight: int = Field(
        2, ge=1, description="Shadow calls an API worker keeps open (>= 1)."
    )
    shadow_min_windows: int = Field(
        100,
        ge=1,
        description="Windows (>= 1) an interval's comparison needs; fewer: insufficient_data.",
    )

    @field_validator("model_uri", "shadow_model_uri")
    @classmethod
    def _registry_uri(cls, v: str | None) -> str | None:
        if not v:  # an empty HAR_MODEL_URI / HAR_SHADOW_MODEL_URI means "not set"
            return None
        if not MODEL_URI_PATTERN.fullmatch(v):
            raise ValueError(f"expected models:/NAME@ALIAS or models:/NAME/VERSION, got {v!r}")
        return v

    @field_validator("shadow_model_tag")
    @classmethod
    def _empty_is_unset(cls, v: str | None) -> str | None:
        return v or None  # HAR_SHADOW_MODEL_TAG= (empty) means no shadow

    @field_validator("sample_dir", mode="before")
    @classmethod
    def _empty_dir_is_off(cls, v: object) -> object:
        return None if v == "" else v  # HAR_SAMPLE_DIR= (empty) means off, not the cwd


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
