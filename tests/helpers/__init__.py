"""Helpers shared by the tests and the benchmark (``load_tests/bench``); not shipped.

Import them as ``tests.helpers...`` from the repository root: pytest puts the root on
``sys.path`` (``pythonpath`` in ``pyproject.toml``) and so does ``python -m``.
"""
