"""Every Prometheus sample name the service exports, read from its metric objects.

Alert rules and dashboards (``deploy/``) are checked against these names
(tests/unit/monitoring/test_monitoring_metrics.py, tests/project/test_deploy_prometheus.py).
"""

from __future__ import annotations

from dataclasses import fields

from har.monitoring.metrics import (
    get_metrics,
    grpc_metrics,
    model_call_metrics,
    model_info_gauge,
    sample_metrics,
    shadow_metrics,
)

_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "summary": ("", "_sum", "_count"),
}


def exported_names() -> list[str]:
    """Every sample name the metrics expose (counters ``_total``, histograms ``_bucket|_sum|_count``)."""
    names: list[str] = []
    shadow = shadow_metrics()
    metrics = [*get_metrics().all(), model_info_gauge()]
    metrics += [getattr(shadow, f.name) for f in fields(shadow)]
    metrics += [*grpc_metrics().all(), *model_call_metrics().all(), *sample_metrics().all()]
    for m in metrics:
        for family in m.describe():
            names += [family.name + s for s in _SUFFIXES[family.type]]
    return sorted(names)
