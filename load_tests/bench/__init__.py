"""Benchmark the served model against the raw model and a naive FastAPI app, on this machine.

Run from the repository root::

    .venv/bin/python -m load_tests.bench            # full run, ~8 min on 2 cores (+8 min with --monitoring both)
    .venv/bin/python -m load_tests.bench --quick    # smoke run, ~4 min
    .venv/bin/python -m load_tests.bench --monitoring both   # + monitoring on/off rounds
    .venv/bin/python -m load_tests.bench --ab monitoring,tracing,sampling   # what make bench runs
    .venv/bin/python -m load_tests.bench --only-ab --quick   # only the monitoring on/off rounds
    .venv/bin/python -m load_tests.bench --only-ab --ab tracing,sampling --no-results
    .venv/bin/python -m load_tests.bench --quick --stages serve --concurrency 1 --no-results

One run measures, one thing at a time:

1. the raw model: ``har.runtime.inference.CompiledModel`` (XLA, padded buckets warmed up) with
   ``configure_tensorflow(1, 1)`` in a subprocess, batch sizes 1-128, windows/s
   (median of ``--raw-runs`` runs); the best is *the ceiling*; with the recording stage
   also the recording's 1,799 windows on two intra-op threads, two chunks at once;
2. the naive baseline (``load_tests/naive_baseline/app.py``: FastAPI + ``model.predict``
   per request) with ``wrk`` at concurrency 1, 16, 64;
3. ``bentoml serve service:HARService`` (started once per configuration with
   ``tests.helpers.servers.bentoml_serve``, each server with a BentoML home of its own
   that shares the model store): HTTP ``POST /predict`` with ``wrk`` and gRPC
   ``Predict`` with ``h2load``, one window per request, closed loop at 1, 16, 64 requests
   in flight (HTTP then gRPC at each level): requests/s, p50, p99, errors, and the mean
   batch the model service formed (BentoML's ``adaptive_batch_size`` histogram on
   ``/metrics``); then HTTP c=1 again right after the c=64 cells (BentoML's dispatcher
   remembers how long recent batches waited);
4. ``POST /predict_recording`` with a synthetic one-hour 50 Hz recording: windows/s end
   to end (median of ``--uploads``) and as a fraction of the ceiling; failed uploads are
   counted and retried; then on a server with ``HAR_TF_INTRA_OP_THREADS=1`` (default 2);
5. the start-up stage (``load_tests/bench/startup.py``), then the raw model at batch 128
   once more: each ratio to the ceiling is also given against it, so a machine that got
   slower during the run shows;
6. with ``--ab SWITCHES`` (``make bench``: ``monitoring,tracing,sampling``; ``--monitoring
   both`` is ``--ab monitoring``): per switch, on vs off, two servers up at once and
   loaded in turn, HTTP and gRPC at c=64, ``--ab-rounds`` rounds (order alternating),
   medians and the on/off ratio of every round (``stages.bench_ab``). ``monitoring``:
   ``HAR_MONITORING=1`` vs ``0``; ``tracing``: ``HAR_TRACING=1`` (sample rate 1) exporting
   to an OTLP/HTTP receiver in this process (``tests/helpers/otlp.py``, spans counted) vs
   ``HAR_TRACING=0``; ``sampling``: ``HAR_SAMPLE_DIR`` set vs unset (windows kept counted);
   both sides of tracing and sampling with monitoring on.

Every row also shows where the CPU went while it was measured (percent of one core):
the server's processes (API worker / model worker / BentoML's supervisor), the load
generator, everything else on the machine, and the host's steal time. The load
generators run on the same cores as the server. Results go to stdout and to ``load_tests/RESULTS.md``.

Modules: ``loadgen`` (wrk, h2load, a gRPC client), ``cpu`` (CPU accounting, py-spy),
``workload`` (model store, request bodies, recording), ``raw`` (the ceiling), ``cells``
(one measured cell), ``stages`` (naive baseline, served cells, on/off rounds),
``report`` (tables, targets, ``RESULTS.md``), ``__main__`` (options, the run).

The model served is the bundled ``models/pretrained/har-cnn-bilstm.keras`` (imported into
the environment's BentoML store if absent). Until it exists, an untrained model of the
same architecture is imported under the same name into a temporary ``BENTOML_HOME``.
"""
