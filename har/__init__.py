"""Human-activity recognition from wrist-worn IMU data: everything except the BentoML wiring.

Modules:
    settings       one typed settings object read from ``HAR_*`` environment variables
    errors         exceptions a user can cause (mapped to HTTP 4xx / gRPC INVALID_ARGUMENT)
    card           the model card: classes, window geometry, units and scaler
    recordings     reading canonical CSV recordings and Garmin export pairs
    preprocessing  units, alignment, resampling, gap splitting, windowing, scaling
    inference      the compiled model function with padded, pre-compiled batch sizes
    registry       importing models with their cards into the BentoML model store
    scoring        turning window predictions into a timeline of activities
"""

__version__ = "0.1.0"
