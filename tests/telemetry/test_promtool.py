"""`promtool check metrics` (Debian's 2.42 and Prometheus 3's) on the real exposition of the
reference app under traffic."""
import subprocess

from harness.support import parse, scrape
from telemetry import catalog


def test_promtool_reports_nothing_for_sublarr_families(tmp_path, promtool_binary):
    promtool = promtool_binary
    from refapp import Config, create_app
    config = Config.from_env({}, data_dir=str(tmp_path), latency_scale=0.0, failure_rate=0.3, seed=3)
    app = create_app(config)
    client = app.test_client()
    client.post("/api/v1/wanted", json={"title": "Show", "language": "de"})
    for i in range(30):
        client.get(f"/api/v1/series/{i % 4}")
        client.get("/api/v1/jobs")
        client.post("/api/v1/wanted/1/search")
        client.post("/api/v1/jobs", json={"file_path": f"/m/{i}.srt", "source_lang": "en",
                                          "target_lang": "de", "fmt": "srt"})
        client.post("/api/v1/providers/podnapisi/download", json={"id": str(i), "fmt": "ass", "title": "Show"})
        client.get(f"/unknown/{i}")
    app.job_queue.shutdown(wait=True)
    text = scrape(client)
    app.extensions["sublarr_telemetry"].shutdown()

    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if "sublarr_" in line]
    assert problems == [], "\n".join(problems)
    assert result.returncode == 0, result.stdout + result.stderr

    assert "otel_scope" not in text and "target_info" not in text
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types)), "one TYPE block per family"
    families = parse(text)
    exercised = {"http", "database", "cache", "queue", "subtitles", "process"}
    for family in catalog.FAMILIES:
        if family.group in exercised:
            base = family.name[:-len("_total")] if family.name.endswith("_total") else family.name
            assert base in families, f"{family.name} missing after traffic"
