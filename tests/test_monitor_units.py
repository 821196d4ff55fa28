"""The monitor's parts on real inputs: log lines, /metrics text made by prometheus_client,
windows of numbers through the rules, the report, the samples table, the config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from backend.config import ConfigError, parse_config
from backend.monitor.config import AccessLogConfig, MonitorConfig, PrometheusConfig, RuleConfig
from backend.monitor.report import MonitorReport, trend
from backend.monitor.rules import Condition, RuleBook, evaluate
from backend.monitor.sources.accesslog import (
    log_format_regex,
    make_parser,
    parse_combined,
    parse_combined_timed,
    regex_parser,
)
from backend.monitor.sources.prometheus import CounterState
from backend.monitor.store import SampleStore
from backend.monitor.window import TOTAL, Digest, Tally, WindowStats, bucket_quantile, summarize
from backend.schema import parse

LINE = (
    '203.0.113.7 - - [25/Nov/2026:07:23:51 +0000] "GET /dashboard?q=a%20b HTTP/1.1" 503 1234'
    ' "https://portal.example/" "Mozilla/5.0 (X11; Linux x86_64) \\"quoted\\"" 0.347'
)

# -- access-log parsing --------------------------------------------------------------------


def test_default_format_reads_status_and_request_time() -> None:
    assert parse_combined_timed(LINE) == (503, pytest.approx(347.0))
    assert parse_combined(LINE) == (503, None)


def test_default_format_rejects_what_is_not_a_log_line() -> None:
    for bad in ("", "garbage", '1.2.3.4 - - [x] "GET / HTTP/1.1" abc 1 "-" "-" 0.1',
                '1.2.3.4 - - [x] "GET / HTTP/1.1" 200 1 "-" "-" -'):  # fmt: skip
        assert parse_combined_timed(bad) is None


def test_log_format_spec_with_upstream_fields() -> None:
    spec = '$remote_addr [$time_local] "$request" $status $request_time $upstream_addr "$host"'
    parse = make_parser(AccessLogConfig(format=spec))
    line = '10.0.0.1 [25/Nov/2026:07:23:51 +0000] "POST /api HTTP/2.0" 201 0.012 10.0.1.5:9000 "p"'
    assert parse(line) == (201, pytest.approx(12.0))
    assert "(?P<status>" in log_format_regex(spec)


def test_regex_format_with_microseconds_like_apache_percent_d() -> None:
    parse = regex_parser(
        r'^\S+ \S+ \S+ \[[^\]]*\] "[^"]*" (?P<status>\d{3}) \S+ (?P<request_time_us>\d+)'
    )
    assert parse('h - - [t] "GET / HTTP/1.1" 500 10 250000') == (500, pytest.approx(250.0))
    assert parse("nope") is None


def test_bad_formats_are_config_errors_naming_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "portal": {"repository": "r", "deploy_path": "/srv"},
                "hosts": [{"name": "web-1", "address": "h"}],
                "monitor": {
                    "access_log": {"format": "$remote_addr $request_time", "regex": "(unclosed"},
                    "rules": [{"name": "x", "metric": "p95"}],
                },
            }
        )
    text = err.value.render()
    assert "monitor.access_log.format" in text and "$status" in text
    assert "monitor.access_log.regex" in text and "not a valid regular expression" in text
    assert "a rule needs a threshold" in text


# -- Prometheus deltas ---------------------------------------------------------------------


def _registry() -> tuple[CollectorRegistry, Counter, Histogram]:
    registry = CollectorRegistry()
    counter = Counter("http_requests", "r", ["status"], registry=registry)
    histogram = Histogram(
        "http_request_duration_seconds", "d", buckets=(0.1, 0.5, 1.0), registry=registry
    )
    return registry, counter, histogram


def test_counter_deltas_new_series_and_reset() -> None:
    state = CounterState(PrometheusConfig())
    registry, counter, histogram = _registry()
    counter.labels(status="200").inc(100)
    counter.labels(status="500").inc(5)
    first = state.update(generate_latest(registry).decode())
    assert first.first
    counter.labels(status="200").inc(50)
    counter.labels(status="500").inc(3)
    counter.labels(status="404").inc(2)  # a series born between scrapes counts from zero
    for value in [0.05] * 8 + [0.7] * 2:
        histogram.observe(value)
    delta = state.update(generate_latest(registry).decode())
    assert (delta.requests, delta.errors, delta.client_errors) == (55, 3, 2)
    assert delta.buckets[100.0] == 8 and delta.buckets[1000.0] == 10
    registry, counter, histogram = _registry()  # the app restarted: counters from zero
    counter.labels(status="200").inc(20)
    counter.labels(status="500").inc(1)
    after = state.update(generate_latest(registry).decode())
    assert (after.requests, after.errors) == (21, 1)


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    cumulative = {100.0: 8.0, 500.0: 8.0, 1000.0: 10.0, float("inf"): 10.0}
    assert bucket_quantile(cumulative, 0.5) == pytest.approx(62.5)
    assert bucket_quantile(cumulative, 0.9) == pytest.approx(750.0)
    assert bucket_quantile({100.0: 1.0, float("inf"): 4.0}, 0.99) == 100.0


def test_digest_exact_quantiles_and_bounded_merge() -> None:
    digest = Digest()
    digest.values.extend(float(v) for v in range(1, 101))
    assert digest.quantile(0.5) == pytest.approx(50.5)
    assert digest.quantile(0.95) == pytest.approx(95.05)
    big = Digest()
    for _ in range(5):
        chunk = Digest()
        chunk.values.extend([1.0] * 150_000)
        big.merge(chunk)
    assert len(big.values) <= 400_000 and big.stride > 1


# -- rules ----------------------------------------------------------------------------------


def _window(index: int, requests: int = 100, errors: int = 0, p95: float = 50.0) -> WindowStats:
    return WindowStats(
        host=TOTAL, index=index, start=index, end=index + 1.0, requests=requests, errors=errors,
        error_rate=errors / requests if requests else None, p95=p95, rps=float(requests),
    )  # fmt: skip


def _book(**rule: object) -> RuleBook:
    spec = {"name": "r", "metric": "error_rate", "threshold": 0.05, "for_windows": 3, **rule}
    return RuleBook(
        parse(
            MonitorConfig,
            {"window_seconds": 1, "min_requests": 20, "default_rules": False, "rules": [spec]},
        )
    )


def test_fires_on_the_nth_consecutive_bad_window_once() -> None:
    book = _book()
    fired = []
    for i, errors in enumerate([0, 10, 10, 10, 10, 10]):
        fired += [(i, t.kind) for t in book.judge([_window(i, errors=errors)], {})]
    assert fired == [(3, "fired")]


def test_a_single_spike_never_fires_and_a_good_window_does_not_reset_n_of_m() -> None:
    book = _book()
    assert not any(book.judge([_window(i, errors=e)], {}) for i, e in enumerate([0, 30, 0, 0]))
    book = _book(for_windows=2, within=3)
    kinds = [
        t.kind for i, e in enumerate([10, 0, 10]) for t in book.judge([_window(i, errors=e)], {})
    ]
    assert kinds == ["fired"]


def test_inconclusive_windows_neither_count_nor_reset() -> None:
    book = _book()
    seq = [(100, 10), (5, 5), (100, 10), (3, 3), (100, 10)]  # (requests, errors)
    results = []
    for i, (n, e) in enumerate(seq):
        window = _window(i, requests=n, errors=e)
        results.append([t.kind for t in book.judge([window], {})])
        if n < 20:
            assert window.verdict == "inconclusive"
    assert results == [[], [], [], [], ["fired"]]


def test_clears_after_two_good_windows_and_can_fire_again() -> None:
    book = _book(for_windows=1)
    kinds = [
        t.kind
        for i, e in enumerate([10, 10, 0, 0, 10])
        for t in book.judge([_window(i, errors=e)], {})
    ]
    assert kinds == ["fired", "cleared", "fired"]


def test_baseline_rule_needs_both_bounds_and_a_baseline() -> None:
    config = MonitorConfig(min_requests=20)
    rule = RuleConfig(name="b", metric="p95", threshold=200, baseline_factor=2.0)
    base = _window(0, p95=150.0)
    assert evaluate(rule, _window(1, p95=250.0), None, config).condition is Condition.INCONCLUSIVE
    assert evaluate(rule, _window(1, p95=250.0), base, config).condition is Condition.OK
    assert evaluate(rule, _window(1, p95=350.0), base, config).condition is Condition.BAD
    assert (
        evaluate(rule, _window(1, p95=190.0), _window(0, p95=50), config).condition is Condition.OK
    )


def test_rps_drop_rule_sees_a_silent_window() -> None:
    config = MonitorConfig(min_requests=20)
    rule = RuleConfig(name="drop", metric="rps", baseline_factor=0.4)
    silent = _window(1, requests=0)
    assert evaluate(rule, silent, _window(0, requests=100), config).condition is Condition.BAD


def test_builtin_rules_use_the_strategy_thresholds() -> None:
    rules = {r.name: r for r in MonitorConfig().effective_rules()}
    assert rules["error-rate"].threshold == 0.01 and rules["error-rate"].for_windows == 3
    assert rules["latency-p95"].threshold == 500 and rules["latency-p95"].within == 5
    assert rules["latency-regression"].action == "warn"
    replaced = parse(MonitorConfig, {"rules": [{"name": "error-rate", "metric": "error_rate",
                                                "threshold": 0.02, "for_seconds": 61}]})  # fmt: skip
    mine = next(r for r in replaced.effective_rules() if r.name == "error-rate")
    assert mine.threshold == 0.02 and mine.windows_needed(30) == 3


# -- windows, samples and the report -----------------------------------------------------------


def test_summary_per_host_and_total_excludes_4xx_from_errors() -> None:
    a, b = Tally(), Tally()
    for status, ms in [(200, 10.0), (404, 12.0), (500, 900.0), (200, 11.0)]:
        a.add(status, ms)
    b.add(200, 20.0)
    stats = summarize({("access_log", "web-1"): a, ("access_log", "web-2"): b},
                      ["web-1", "web-2", "web-3"], "access_log", 1, 0.0, 2.0)  # fmt: skip
    by = {s.host: s for s in stats}
    assert by["web-1"].error_rate == 0.25 and by["web-1"].client_errors == 1
    assert by["web-3"].requests == 0 and by["web-3"].error_rate is None
    assert by[TOTAL].requests == 5 and by[TOTAL].rps == 2.5 and by[TOTAL].error_rate == 0.2


def test_trend_direction_and_assessment() -> None:
    assert trend("p95", 100, 250) == {"before": 100, "after": 250, "change_pct": 150.0,
                                      "direction": "up", "assessment": "worse"}  # fmt: skip
    assert trend("rps", 100, 50)["assessment"] == "worse"
    assert trend("error_rate", 0.01, 0.0102)["direction"] == "flat"


def test_samples_table_and_report_files(tmp_path: Path) -> None:
    store = SampleStore(tmp_path / "journal.db")
    windows = [_window(i, errors=e) for i, e in enumerate([0, 0, 20])]
    store.add("bp-1", "run", "monitor", windows)
    store.add("bp-1", "run", "baseline", [_window(0, p95=40.0)], kind="aggregate")
    assert [r["window"] for r in store.rows("bp-1", phase="monitor")] == [0, 1, 2]
    assert store.baseline("bp-1")[TOTAL].p95 == 40.0
    config = MonitorConfig()
    RuleBook(config).judge(windows, {})
    report = MonitorReport.build(
        config=config, deployment_id="bp-1", run_id="run", started_at=0.0, ended_at=3.0,
        windows=windows, after={TOTAL: windows[-1]}, baseline=store.baseline("bp-1"),
        stopped_by="duration", auto_rollback=False, source="access_log", incidents=[],
        trigger=None, rollback=None,
    )  # fmt: skip
    paths = report.write_file(tmp_path / "out.md")
    assert [p.name for p in paths] == ["out.md", "out.json"]
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["trends"][TOTAL]["p95"]["direction"] == "up"
    assert data["targets"]["error_rate"]["status"] == "missed"
    assert "| p95 | 40.0 ms | 50.0 ms | +25.0% | up worse |" in (tmp_path / "out.md").read_text()


def test_a_traffic_source_that_is_off_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match=r"\[monitor.prometheus\] is not enabled"):
        parse(MonitorConfig, {"traffic_source": "prometheus"})
    assert parse(MonitorConfig, {"traffic_source": "probes"}).traffic_source == "probes"
