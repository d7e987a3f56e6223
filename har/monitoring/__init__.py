"""Monitoring of the served model without labels: whylogs profiles, drift, Prometheus metrics.

Modules:
    features  per-window feature rows (numpy, batched on the writer thread)
    profiles  whylogs behind one small module (the only one importing it)
    store     profile file names (UTC interval + writer) and selection by time
    drift     Hellinger drift per feature, confidence and stability of an interval
    metrics   Prometheus metrics, created lazily for BentoML's multiprocess ``/metrics``
    monitor   :class:`Monitor`: queue, background writer, roll-over, drift of a worker
    report    the HTML drift report (``python -m har drift-report``)

Alert rules for these metrics: ``deploy/prometheus/alert-rules.yml``.
"""

from har.monitoring.monitor import (
    Monitor,
    build_reference_profile,
    read_reference_profile,
    write_reference_profile,
)
from har.monitoring.report import drift_report
from har.monitoring.store import parse_interval

__all__ = [
    "Monitor",
    "build_reference_profile",
    "drift_report",
    "parse_interval",
    "read_reference_profile",
    "write_reference_profile",
]
