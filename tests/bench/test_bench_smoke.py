"""Smoke tests of the benchmark machinery (``bench/overhead.py``) on tiny budgets.

These check that every section runs, that the instrumented variants really
recorded what was driven through them, and the output format. They never
assert a timing target: on a tiny budget the numbers are noise.
"""
import json
import math
import re

import pytest

from bench import overhead as bench

TINY = bench.Budget(http_rounds=3, http_batch=40, http_threads=4, db_rounds=3, db_batch=40,
                    scrape_sizes=(5, 20), scrape_rounds=3, memory_sizes=(20,),
                    server_rounds=1, server_seconds=1.0, server_connections=2,
                    server_scrape_interval=0.5)

SUMMARY = re.compile(r"http_overhead_ratio=(\S+) db_overhead_ratio=(\S+) "
                     r"scrape_ratio=(\S+) throughput_ratio=(\S+)")


def _positive_finite(text: str) -> float:
    value = float(text)
    assert math.isfinite(value) and value > 0, text
    return value


def test_in_process_sections_run_and_count_what_they_drive():
    assert bench.created_samples_enabled()
    results = bench.run(TINY, server=False)
    assert bench.created_samples_enabled()  # the global switch is restored

    http = results["http"]
    assert http["checks"]["ok"], http["checks"]
    assert http["tracing_on"] is False  # the HTTP ratio is the one with tracing off
    assert set(http["modes"]) == {"1 thread", "4 threads"}
    for mode in http["modes"].values():
        for clock in ("cpu", "wall"):
            assert len(mode["raw"][clock]["ours"]["request"]) == TINY.http_rounds
            assert len(mode["raw"][clock]["ours"]["drain"]) == TINY.http_rounds
            assert mode[clock]["bare_us"] > 0
    assert results["db"]["checks"]["ok"], results["db"]["checks"]

    for n in TINY.scrape_sizes:
        size = results["scrape"]["sizes"][str(n)]
        # the same label sets on both sides, each with 9 buckets + +Inf + _sum + _count and the counter
        assert size["comparable"] and size["ours_label_sets"] == size["prom_label_sets"] == n
        assert size["prom_sample_lines"] == 13 * n + 1  # + the in-progress gauge
        # as Prometheus scrapes: three formats, idle and all-changed; the ratio is the worst of them
        assert set(size["cases"]) == {f"{fmt}/{state}" for fmt in ("text", "openmetrics", "openmetrics+gzip")
                                      for state in ("idle", "all-changed")}
        assert size["ratio"] == max(case["ratio"] for case in size["cases"].values())
        assert size["bytes"]["openmetrics+gzip"]["ours"] < size["bytes"]["openmetrics"]["ours"]
        assert size["otlp"]["request_bytes"] > 0
    for n in TINY.memory_sizes:
        assert results["memory"]["sizes"][str(n)]["comparable"]
        assert results["memory"]["sizes"][str(n)]["ours_bytes_per_series"] > 0

    for name in ("http_overhead_ratio", "db_overhead_ratio", "scrape_ratio"):
        _positive_finite(str(results["headlines"][name]))
    assert math.isnan(results["headlines"]["throughput_ratio"])  # no server section

    table = bench.table(results)
    assert table.splitlines()[0].split() == ["measurement", "ours", "baseline(s)", "ratio", "target", "met?"]
    for row in ("HTTP overhead/req, 1 thread, amortised incl. drain",
                "HTTP overhead/req, 4 threads, amortised incl. drain",
                "DB overhead/query (SQLite), amortised incl. drain",
                "scrape CPU, 20 label sets (261 samples), openmetrics+gzip/all-changed",
                "OTLP collect+encode, 20 label sets", "memory per label set, 20 sets"):
        assert row in table


def test_ratio_clamps_unresolved_overheads():
    assert bench.ratio(2e-6, 4e-6) == (0.5, False)
    value, clamped = bench.ratio(-1e-6, 4e-6)
    assert clamped and value > 0 and math.isfinite(value)
    value, clamped = bench.ratio(3e-6, -1e-6)
    assert clamped and value > 0 and math.isfinite(value)


@pytest.mark.e2e
def test_quick_command_output_format(monkeypatch, capsys, tmp_path):
    """``main(["--quick"])`` on a tiny budget, gunicorn section included."""
    monkeypatch.setattr(bench, "QUICK", TINY)
    out_json = tmp_path / "bench.json"
    assert bench.main(["--quick", "--json", str(out_json)]) == 0
    lines = capsys.readouterr().out.rstrip("\n").splitlines()
    match = SUMMARY.fullmatch(lines[-1])
    assert match, lines[-1]
    values = [_positive_finite(v) for v in match.groups()]
    assert "throughput, gunicorn 1x4 gthread" in "\n".join(lines)

    data = json.loads(out_json.read_text())
    assert [data["headlines"][k] for k in ("http_overhead_ratio", "db_overhead_ratio",
                                          "scrape_ratio", "throughput_ratio")] == pytest.approx(values, rel=1e-2)
    server = data["server"]
    assert server["load_generator"] in ("wrk", "python")
    assert server["checks"]["errors"] == {"bare": 0, "ours": 0, "prom": 0}
    assert server["checks"]["ours_requests_counted"] > 0


@pytest.mark.e2e
def test_python_load_generator(tmp_path):
    """The fallback used when wrk is missing drives a real server."""
    server = bench.GunicornServer("bare")
    try:
        server.wait_ready()
        result = bench._run_python_load("127.0.0.1", server.port, "/api/v1/jobs/1", 2, 0.5)
    finally:
        server.stop()
    assert result["requests"] > 0 and result["non_2xx"] == 0
