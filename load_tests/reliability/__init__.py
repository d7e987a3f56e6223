"""Reliability harness (issue 10): hostile input, resource bounds and faults vs real servers.

Modules: ``common`` (results, the table, HTTP helpers), ``http_cases`` and
``grpc_cases`` (client input), ``fuzz`` (schemathesis over ``/docs.json``), ``kills``
(SIGKILL / SIGTERM of workers and server), ``mixed`` (mixed HTTP + gRPC load with the
model-call retry count). ``python -m load_tests.reliability`` runs everything
(``make reliability``); ``tests/e2e/test_reliability.py`` runs the short form.
"""
