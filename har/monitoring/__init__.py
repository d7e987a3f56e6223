"""Monitoring of the served model without labels: whylogs profiles, drift, Prometheus metrics.

Modules:
    features  per-window feature rows (numpy, batched on the writer thread)
    profiles  whylogs behind one small module (the only one importing it)
    store     profile file names (UTC interval + writer) and selection by time
    drift     Hellinger drift per feature (whole interval and recent part), confidence, stability
    metrics   Prometheus metrics, created lazily for BentoML's multiprocess ``/metrics``
    publish   the ``har_drift_*`` gauges from a drift answer
    reference the reference profile of the training windows
    writer    queue, background writer, partial files and roll-over of one worker
    monitor   :class:`Monitor`: a worker's writer, drift kept current, the live report
    report    the HTML drift report page (``python -m har drift-report``, the service)
    report_plots  its plots

Alert rules for these metrics: ``deploy/prometheus/alert-rules.yml``.
"""

from har.monitoring.monitor import Monitor
from har.monitoring.reference import (
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
