"""One typed settings object, read from ``HAR_*`` environment variables.

Nothing else in the project reads ``os.environ``. Bad values fail at start-up
with pydantic's message naming the variable.
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
        f"{DEFAULT_MODEL_NAME}:latest", description="BentoML model tag the service serves."
    )
    grpc_port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 disables gRPC).")
    grpc_host: str = Field("0.0.0.0", description="Interface the gRPC server binds.")
    max_batch_size: int = Field(128, ge=1, le=4096, description="Largest batch the model sees.")
    max_latency_ms: int = Field(1000, ge=1, description="Adaptive batching latency budget.")
    api_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="API worker processes (each serves HTTP and gRPC; ~0.3 GB each). On 2 "
        "cores 2 were no faster than 1 at 64 connections (HTTP 0.92x, gRPC 0.97x; "
        "load_tests/AB.md): worth it with more cores.",
    )
    coalesce_inflight: int = Field(
        1,
        ge=0,
        description="Model-service calls an API worker keeps open; concurrent requests beyond "
        "that are merged into one call (0: one call per request). 1 beat 4 by 1.20x (HTTP) "
        "and 1.23x (gRPC) at 64 connections and 1.8-2.4x at 1 (load_tests/AB.md).",
    )
    coalesce_fill: bool = Field(
        True,
        description="Right after a model call returned, hold the next (at most as long as "
        "that call took) until a third of the rows in the loop have queued, so that the API "
        "worker and the model overlap (har/serving/coalescing.py). With it (and the next call sent "
        "before answering): 1.26x HTTP, 1.13x gRPC at 64 connections (load_tests/AB.md).",
    )
    xla: bool = Field(True, description="Compile the model with XLA (padded batch sizes).")
    tf_intra_op_threads: int = Field(
        2,
        ge=1,
        le=64,
        description="TensorFlow intra-op threads of the model worker, and how many chunks "
        "of a whole recording it runs at once: with 2 on 2 cores a recording's model time "
        "is ~1.6-1.9x shorter than with 1 (the API worker idles meanwhile); single windows "
        "showed no consistent difference in three A/Bs (load_tests/AB.md).",
    )
    warmup: Literal["background", "blocking"] = Field(
        "background",
        description="When the model worker compiles its XLA batch sizes (~1 s each): "
        "`background` = after it is ready (a shape-generic function serves meanwhile, "
        "slower per window for the first seconds; ready in about half the time), "
        "`blocking` = before it reports ready (full speed from the first request).",
    )
    tracing: bool = Field(
        False,
        description="BentoML's OpenTelemetry request spans (and its X-BentoML-Request-ID "
        "header). Off: its tracing middleware is not installed, which saves CPU on every "
        "request; turn on together with BentoML's `tracing` configuration (exporter, "
        "sample_rate) to export spans.",
    )
    allow_untested_bentoml: bool = Field(
        False,
        description="Start even where a patch of BentoML internals that correctness relies "
        "on (client errors as 4xx, bounded metric labels, graceful stop) does not match the "
        "installed BentoML (another version, or changed internals): each is then applied if "
        "what it replaces has the expected shape, skipped otherwise, with a WARNING. Off: such "
        "a start is refused (docs/bentoml-patches.md).",
    )
    max_windows_per_request: int = Field(4096, ge=1, description="Windows in one /predict.")
    max_request_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest accepted request body (bytes)."
    )
    align_tolerance_s: float = Field(
        0.02, gt=0, description="Accelerometer/gyroscope samples further apart are not paired."
    )
    max_fill_samples: int = Field(
        2, ge=0, description="Gaps of at most this many missing samples are interpolated."
    )
    max_resampled_samples: int = Field(
        4_000_000,
        ge=1000,
        description="Samples the resampler may allocate for one recording (its finest grid, "
        "6 float64 channels: 48 bytes each, ~192 MB at the default); more: 400.",
    )
    body_read_timeout_s: float = Field(
        20.0,
        gt=0,
        description="Seconds a client has to send a whole request body; slower: 408.",
    )
    stream_idle_timeout_s: float = Field(
        60.0, gt=0, description="Seconds a gRPC stream may wait for its next chunk."
    )
    stream_max_duration_s: float = Field(
        12 * 3600.0, gt=0, description="Seconds one gRPC stream may stay open."
    )
    uncertain_below: float = Field(
        0.6, gt=0, lt=1, description="A window with lower confidence counts as uncertain."
    )
    profile_dir: Path = Field(Path("logs/whylogs"), description="Where whylogs profiles go.")
    profile_interval_s: float = Field(300.0, gt=0, description="Profile roll-over period.")
    profile_queue_size: int = Field(
        20_000,
        ge=1,
        description="Windows waiting for the monitoring writer before new ones are dropped "
        "(each holds its 200x6 float32 samples: ~4.8 KB, ~96 MB at the default).",
    )
    monitoring: bool = Field(True, description="Profile served windows with whylogs.")
    drift_threshold: float = Field(
        0.7, gt=0, le=1, description="Hellinger distance above which a feature has drifted."
    )
    drift_min_rows: int = Field(100, ge=1, description="Fewer rows: insufficient_data.")
    # monitoring
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
        description="Seconds between writes of a worker's open profile interval to its one "
        "partial file (a hard kill loses at most about this much; 0: only at roll-over).",
    )
    report_cache_s: float = Field(
        10.0, ge=0, description="Seconds the service keeps a rendered drift report per interval."
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
        description="Nats an activity change costs in the Viterbi pass (0: raw argmax).",
    )
    min_segment_s: float = Field(
        0.0,
        ge=0,
        description="Smoothed segments shorter than this (seconds) join a neighbour (0: off).",
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
        0.01, ge=0, le=1, description="Promotion gate: accepted accuracy drop vs the holder."
    )
    gate_macro_f1_tolerance: float = Field(
        0.01, ge=0, le=1, description="Promotion gate: accepted macro-F1 drop vs the holder."
    )

    @field_validator("model_uri")
    @classmethod
    def _registry_uri(cls, v: str | None) -> str | None:
        if not v:  # an empty HAR_MODEL_URI means "not set"
            return None
        if not MODEL_URI_PATTERN.fullmatch(v):
            raise ValueError(f"expected models:/NAME@ALIAS or models:/NAME/VERSION, got {v!r}")
        return v

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
        description="Windows waiting for the shadow before new ones are dropped (~4.8 KB each).",
    )
    shadow_timeout_s: float = Field(
        10.0, gt=0, description="Deadline of one shadow call; its windows are dropped after it."
    )
    shadow_inflight: int = Field(2, ge=1, description="Shadow calls an API worker keeps open.")
    shadow_min_windows: int = Field(
        100, ge=1, description="Fewer windows compared in an interval: insufficient_data."
    )

    @field_validator("shadow_model_tag", "shadow_model_uri")
    @classmethod
    def _empty_is_unset(cls, v: str | None) -> str | None:
        return v or None  # HAR_SHADOW_MODEL_TAG= (empty) means no shadow

    @field_validator("shadow_model_uri")
    @classmethod
    def _registry_uri_form(cls, v: str | None) -> str | None:
        if v and not MODEL_URI_PATTERN.fullmatch(v):
            raise ValueError(f"expected models:/NAME@ALIAS or models:/NAME/VERSION, got {v!r}")
        return v


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
