"""ShadowStats: counts per time bucket, intervals, the Prometheus counters, the report section."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from har.monitoring.metrics import shadow_metrics
from har.shadow.compare import BUCKET_S, RETENTION_S, ShadowStats


def onehot(ids: list[int], n: int, conf: float = 0.9) -> np.ndarray:
    p = np.full((len(ids), n), (1 - conf) / (n - 1))
    p[np.arange(len(ids)), ids] = conf
    return p


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def test_agreement_by_class_name_and_disagreement_pairs() -> None:
    # the shadow knows the same activities in another order, plus one more
    stats = ShadowStats(["a", "b", "c"], ["c", "a", "b", "d"], model="s:1", primary_model="p:1")
    stats.min_windows = 3
    primary = onehot([0, 0, 1, 2, 2], 3, 0.8)
    shadow = onehot([1, 3, 2, 0, 2], 4, 0.6)  # a=a, a->d, b=b, c=c, c->b
    stats.record(primary, shadow)
    a = stats.answer()
    assert a["status"] == "ok" and a["windows"] == 5 and a["agreement"] == pytest.approx(0.6)
    assert a["disagreement"] == {"a": {"d": 1}, "c": {"b": 1}}
    assert a["confidence"] == {"primary": pytest.approx(0.8), "shadow": pytest.approx(0.6)}
    with pytest.raises(ValueError, match="does not match"):
        stats.record(primary, shadow[:4])


def test_intervals_select_buckets_and_old_buckets_are_forgotten() -> None:
    t0 = 1_800_000_000.0  # a multiple of BUCKET_S
    clock = Clock(t0)
    stats = ShadowStats(["a", "b"], ["a", "b"], model="s", primary_model="p", clock=clock)
    stats.record(onehot([0, 1], 2), onehot([0, 0], 2))  # 1 of 2 agree
    clock.t = t0 + 5 * BUCKET_S
    stats.record(onehot([1] * 3, 2), onehot([1] * 3, 2))  # 3 of 3 agree
    stats.record_dropped(4, "queue_full")
    assert stats.answer()["windows"] == 5 and stats.answer()["dropped"] == 4
    late = stats.answer(since=at(t0 + BUCKET_S))
    assert (late["windows"], late["agreement"], late["dropped"]) == (3, 1.0, 4)
    early = stats.answer(until=at(t0 + BUCKET_S - 1))
    assert (early["windows"], early["agreement"], early["dropped"]) == (2, 0.5, 0)
    assert early["status"] == "insufficient_data" and "HAR_SHADOW_MIN_WINDOWS" in early["reason"]
    assert stats.answer(since=at(t0 + 9 * BUCKET_S))["agreement"] is None
    clock.t = t0 + RETENTION_S + BUCKET_S  # a new bucket, more than RETENTION_S after the first
    stats.record(onehot([0], 2), onehot([0], 2))
    assert stats.answer()["windows"] == 4


def test_counters_move_with_every_window() -> None:
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = {
        "w": value("har_shadow_windows_total"),
        "a": value("har_shadow_agreements_total"),
        "d": value("har_shadow_disagreements_total", primary="x", shadow="y"),
        "q": value("har_shadow_windows_dropped_total", reason="timeout"),
        "c": value("har_shadow_confidence_count", model="shadow"),
    }
    stats = ShadowStats(
        ["x", "y"], ["x", "y"], model="s", primary_model="p", metrics=shadow_metrics()
    )
    stats.record(onehot([0, 0, 1], 2), onehot([0, 1, 1], 2))
    stats.record_dropped(7, "timeout")
    assert value("har_shadow_windows_total") - before["w"] == 3
    assert value("har_shadow_agreements_total") - before["a"] == 2
    assert value("har_shadow_disagreements_total", primary="x", shadow="y") - before["d"] == 1
    assert value("har_shadow_windows_dropped_total", reason="timeout") - before["q"] == 7
    assert value("har_shadow_confidence_count", model="shadow") - before["c"] == 3


def test_the_report_page_gains_a_shadow_section_only_with_a_shadow() -> None:
    from har.monitoring import report

    stats = ShadowStats(["a", "b"], ["a", "b"], model="challenger:7", primary_model="p")
    stats.record(onehot([0, 1, 1], 2), onehot([0, 0, 1], 2))
    section = report._shadow_html(stats.answer())
    assert 'id="shadow"' in section and "challenger:7" in section
    assert "<td>b</td><td>a</td><td class='num'>1</td>" in section
