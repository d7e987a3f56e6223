"""Human-activity recognition from wrist-worn IMU data: everything except the BentoML wiring.

One folder per layer, from the top down. A layer imports only the layers below it, the
packages of one row do not import each other, nothing imports in a circle, and BentoML is
imported only by ``serving`` and ``runtime.model_store`` (``lint-imports`` checks all of it:
``[tool.importlinter]`` in pyproject.toml; docs/architecture.md draws it)::

    cli         python -m har: the commands, the MLflow lifecycle commands, the settings table
    serving     the BentoML edge: what each worker builds (assembly), the model service
                client and its coalescer, graceful stop, the docs page, /predict's input
                spec, worker start-up, patches/ of BentoML's internals (one module each)
    http        endpoint bodies, uploads and body bounds; /predict's body to float32;
                the Open Inference Protocol's REST routes (v2); the one error mapping
    grpc        the har.v1 and Open Inference Protocol servicers and server, message
                conversion, the one error mapping, metrics and traces of calls, TLS
    training    training and evaluating the bundled model, timeline evaluation
    shadow      a second model scored on the same windows off the response path
    core        the transport-agnostic scorer, its JSON answers, the Open Inference
                Protocol's model, bearer tokens, offline scoring
    lifecycle   the MLflow registry: register, promotion gate, aliases, registry URIs
    monitoring  whylogs profiles of what is served, drift, Prometheus metrics, the report
    runtime     the compiled TensorFlow model, ONNX Runtime and the ONNX export, calibration;
                BentoML's model store (model_store)
    domain      model card, errors, recordings, preprocessing, stream windows, timelines,
                typed results, the model-call type
    settings    the one typed settings object read from ``HAR_*`` environment variables
    v1          the gRPC contract (har.proto and its generated code)
    oip         the Open Inference Protocol's gRPC contract, vendored, and its generated code
"""

__version__ = "0.1.0"
