"""load_tests.bench: the interleaved on/off rounds of each switch (monitoring, tracing,
sampling): options, row names, report sections, targets, and what the rounds count."""

from __future__ import annotations

import datetime as dt

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from load_tests.bench.__main__ import parse_args
from load_tests.bench.common import (
    AB_SUFFIX,
    AB_SWITCHES,
    GRPC_CELL,
    HTTP_CELL,
    MIXED_CELL,
    AbResult,
    ModelSetup,
    Row,
)
from load_tests.bench.report import ab_section, ab_summary, report, targets
from load_tests.bench.stages import (
    KeepCount,
    keep_notes,
    requests_served,
    samples_kept,
    sampling_notes,
    tracing_notes,
)
from tests.helpers.otlp import count


@pytest.mark.parametrize(
    ("argv", "switches"),
    [
        ([], ()),
        (["--monitoring", "both"], ("monitoring",)),
        (["--only-ab"], ("monitoring",)),  # as before --ab existed
        (["--only-ab", "--ab", "tracing,sampling"], ("tracing", "sampling")),
        (["--ab", "sampling,monitoring,tracing"], ("monitoring", "tracing", "sampling")),
        (["--monitoring", "both", "--ab", "sampling"], ("monitoring", "sampling")),
        (["--ab", "placement,tracing"], ("tracing", "placement")),
    ],
)
def test_the_switches_run_in_a_fixed_order(argv: list[str], switches: tuple[str, ...]) -> None:
    opts, _ = parse_args(argv)
    assert opts.ab == switches


def test_an_unknown_switch_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--ab", "tracing,profiling"])
    assert "switches are monitoring,tracing,sampling,placement" in capsys.readouterr().err


def ab_samples(
    on: list[float], off: list[float], switch: str = "monitoring"
) -> dict[tuple[str, str], list[Row]]:
    def side(values: list[float]) -> list[Row]:
        return [Row("x", "c=64", v, 50, 90, 0, 1.0, {"api": 1}) for v in values]

    cells = AB_SWITCHES[switch].cells
    return {(p, lab): side(v) for p in cells for lab, v in (("on", on), ("off", off))}


def test_sampling_rows_are_named_by_switch_and_judged_against_five_percent() -> None:
    # per-round ratios 0.90, 0.96, 0.93: median 0.93 < 0.95
    on, off = [900.0, 480.0, 930.0], [1_000.0, 500.0, 1_000.0]
    rows, lines, paired = ab_summary(ab_samples(on, off, "sampling"), 3, 64, 8, "sampling")
    cells = (HTTP_CELL, GRPC_CELL, MIXED_CELL)  # the worst case twice, then the usual case
    assert {r.cell for r in rows} == {
        f"{p} [sampling {lab}] {AB_SUFFIX}" for p in cells for lab in ("on", "off")
    }
    assert paired == {p: pytest.approx(0.93) for p in cells}
    assert lines[2].startswith("| 1 | 900 | 1,000 | 0.90 |")
    items = targets(rows, "on", None, {"sampling": paired})
    sampling = [(n, m, ok) for n, m, ok in items if "sampling on" in n]
    assert [n for n, _, _ in sampling] == [
        f"{p} c=64 throughput with sampling on >= 95 % of off (median of the per-round ratios)"
        for p in cells
    ]
    assert all(ok is False for _, _, ok in sampling)
    assert sampling[0][1] == "0.93 (ratio of the two sides' medians: 900 / 1,000 = 0.90)"
    assert not any("monitoring on" in n for n, _, _ in items)  # not measured: no row


def test_tracing_has_no_target_row_but_its_section_reports_the_ratio() -> None:
    rows, lines, paired = ab_summary(
        ab_samples([800.0, 850.0], [1_000.0, 1_000.0]), 2, 64, 8, "tracing"
    )
    assert not any("tracing" in n for n, _, _ in targets(rows, "on", None, {"tracing": paired}))
    opts, _ = parse_args(["--ab-duration", "8", "--warmup", "2"])
    text = ab_section(lines, opts, "tracing", ["spans received: 12"], paired)
    assert text.startswith("\n## Tracing overhead (on vs off, interleaved)\n")
    assert "one with `HAR_TRACING=1`" in text and "(8 s per cell after 2 s of warm-up" in text
    assert "- spans received: 12\n" in text
    assert "- No numeric target: median of the per-round on/off ratios " in text
    assert f"{HTTP_CELL} 0.82, {GRPC_CELL} 0.82." in text


def test_the_sampling_section_says_whether_the_target_is_met_per_protocol() -> None:
    opts, _ = parse_args([])
    paired = {HTTP_CELL: 0.97, GRPC_CELL: 0.91}
    text = ab_section(["| table |"], opts, "sampling", [], paired)
    assert "## Sampling overhead (windows kept for labelling) (on vs off, interleaved)" in text
    assert (
        "- Target (issue 28): sampling on/off >= 0.95 at c=64, the median of the per-round "
        f"ratios per protocol: {HTTP_CELL} 0.97, {GRPC_CELL} 0.91 "
        f"({HTTP_CELL} met, {GRPC_CELL} **NOT met**)." in text
    )


def test_the_report_has_a_section_per_switch_in_run_order_and_the_sampling_targets() -> None:
    opts, _ = parse_args(["--only-ab", "--ab", "tracing,sampling"])
    results = []
    for switch in opts.ab:
        samples = ab_samples([990.0], [1_000.0], switch)
        rows, lines, paired = ab_summary(samples, 1, 64, 8, switch)
        results.append(AbResult(switch, rows, lines, paired, [f"{switch} note"]))
    all_rows = [r for res in results for r in res.rows]
    setup = ModelSetup("har:1", None, None, "bundled", None)  # type: ignore[arg-type]
    text = report(all_rows, opts, setup, "on", dt.datetime(2026, 12, 7, tzinfo=dt.UTC), results)
    tracing, sampling = text.index("## Tracing overhead"), text.index("## Sampling overhead")
    assert tracing < sampling < text.index("## Targets")
    assert "Monitoring overhead" not in text
    assert text.count("with sampling on >= 95 % of off") == 3  # worst case x2, held-out mix
    assert "- sampling note\n" in text and "- tracing note\n" in text


def test_windows_kept_are_read_from_the_metrics_by_reason() -> None:
    metrics = "\n".join(
        [
            "# HELP har_samples_kept_total Served windows kept for labelling",
            'har_samples_kept_total{reason="uncertain"} 12.0',
            'har_samples_kept_total{reason="random"} 30.0',
            'har_samples_kept_created{reason="random"} 1.7e9',
            "har_samples_dropped_total 0.0",
        ]
    )
    kept = samples_kept(metrics)
    assert kept == {"uncertain": 12.0, "random": 30.0}
    (note,) = sampling_notes(kept, 3)
    assert (
        note
        == "windows kept by the sampling-on server: 42 (random 30, uncertain 12), in 3 segment files so far"
    )
    assert sampling_notes({}, 0)[0].startswith("windows kept by the sampling-on server: 0 (none)")


def test_the_tracing_notes_count_spans_per_request_and_say_the_receiver_shares_the_machine() -> (
    None
):
    spans, shares = tracing_notes(123_456, 789, 4.25, 10_000)
    assert spans.startswith(
        "spans received from the tracing-on server: 123,456 in 789 OTLP/HTTP exports, for "
        "10,000 requests it answered (warm-ups included): 12.3 spans per request"
    )
    assert "same" in shares and "4.2 CPU-seconds" in shares
    assert ": n/a spans per request" in tracing_notes(0, 0, 0.0, 0)[0]


def test_requests_served_counts_predict_over_http_and_grpc_only() -> None:
    metrics = "\n".join(
        [
            'bentoml_service_request_total{endpoint="/predict",http_response_code="200",'
            'service_name="har",service_version="not available"} 100.0',
            'bentoml_service_request_total{endpoint="/predict",http_response_code="400",'
            'service_name="har",service_version="not available"} 2.0',
            'bentoml_service_request_total{endpoint="/model",http_response_code="200",'
            'service_name="har",service_version="not available"} 5.0',
            'bentoml_service_request_total{endpoint="/predict_proba",http_response_code="200",'
            'service_name="har-model",service_version="not available"} 40.0',
            'har_grpc_server_handled_total{grpc_code="OK",grpc_method="Predict",'
            'grpc_service="har.v1.ActivityRecognition",grpc_type="unary"} 30.0',
            'har_grpc_server_handled_total{grpc_code="OK",grpc_method="GetModel",'
            'grpc_service="har.v1.ActivityRecognition",grpc_type="unary"} 7.0',
            "# TYPE har_grpc_server_handled_total counter",
        ]
    )
    assert requests_served(metrics) == 132


def test_the_receiver_counts_the_spans_of_an_export() -> None:
    req = ExportTraceServiceRequest()
    for n in (2, 3):
        scope = req.resource_spans.add().scope_spans.add()
        for i in range(n):
            scope.spans.add(name=f"s{i}")
    assert count(req.SerializeToString()) == 5
    assert count(ExportTraceServiceRequest().SerializeToString()) == 0


def test_the_sampling_rounds_count_the_share_kept_per_cell_from_metric_deltas() -> None:
    def metrics(served: int, uncertain: float, random: float) -> str:
        return "\n".join(
            [
                'bentoml_service_request_total{endpoint="/predict",service_name="har",'
                f'http_response_code="200"}} {served}.0',
                f'har_samples_kept_total{{reason="uncertain"}} {uncertain}',
                f'har_samples_kept_total{{reason="random"}} {random}',
            ]
        )

    worst, mixed = KeepCount(), KeepCount()
    worst.add(metrics(0, 0, 0), metrics(1000, 1000, 10))
    mixed.add(metrics(1000, 1000, 10), metrics(3000, 1240, 30))  # round 1
    mixed.add(metrics(5000, 3000, 50), metrics(7000, 3200, 70))  # round 2
    assert mixed.served == 4000 and mixed.kept == {"uncertain": 440.0, "random": 40.0}
    notes = keep_notes({HTTP_CELL: worst, GRPC_CELL: KeepCount(), MIXED_CELL: mixed})
    assert notes == [
        f"windows kept in `{HTTP_CELL}` (worst case: the benchmark's one window is uncertain): "
        "random 1.0 %, uncertain 100.0 % of 1,000 windows served",
        f"windows kept in `{MIXED_CELL}`: random 1.0 %, uncertain 11.0 % of 4,000 windows served",
    ]
