"""Human-activity recognition from wrist-worn IMU data: everything except the BentoML wiring.

Modules:
    settings       one typed settings object read from ``HAR_*`` environment variables
    errors         exceptions a user can cause (mapped to HTTP 4xx / gRPC INVALID_ARGUMENT)
    card           the model card: classes, window geometry, units and scaler
    recordings     reading canonical CSV recordings and Garmin export pairs
    preprocessing  units, alignment, resampling, gap splitting, windowing, scaling
    inference      the compiled model function with padded, pre-compiled batch sizes
    registry       importing models with their cards into the BentoML model store
    scorer         the transport-agnostic core: windows, recordings, streams -> results
    results        typed results (predictions, scored windows, activity timeline)
    formats        the HTTP JSON answers built from those results
    grpc_service   the gRPC servicer and server
    http           HTTP pieces that need no BentoML (body limit, uploads, endpoint bodies)
    model_client   calls to the model service (routing by size, coalescing, retry)
    bentoml_compat workarounds for BentoML 1.4.30 (timer leak, start-up heap)
    offline        offline scoring of recording files (python -m har predict)
"""

__version__ = "0.1.0"
