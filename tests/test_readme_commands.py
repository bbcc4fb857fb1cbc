"""Every shell command the docs show runs as written from a clone after `scripts/test`'s set-up.

Commands are read from the ```sh blocks of the README, the monitoring guide
and docs/, and from inline code that starts like a command. Each one's
executable must exist where the command says (a repository path, a command
substitution such as ``$(scripts/build-collector)``, or a name on PATH); the
README's push-mode block is then run line by line as written; only the
environment the commands read differs: free ports instead of the defaults
(which may be taken here), this test's Redis and a fresh SQLite database, no
simulated latency.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from harness.compose import compose_binary
from harness.net import answers_ok
from harness.support import REPO, free_port, missing, terminate, wait_for

DOCS = [REPO / "README.md", REPO / "monitoring" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Inline code counts as a command when it starts like one.
_COMMAND_START = re.compile(r"^(?:\$\(scripts/|scripts/|\.venv/bin/|docker |gunicorn |rq |otelcol|python3? -m |"
                            r"sublarr-telemetry )")
_BUILTINS = {"export", "cd", "source", "."}


def _strip_comment(line: str) -> str:
    return re.split(r"\s+#\s", " " + line, maxsplit=1)[0].strip()


def shown_commands() -> list[tuple[str, str]]:
    """(document, command) for every command shown, comments removed."""
    found = []
    for doc in DOCS:
        text = re.sub(r"<!--.*?-->", "", doc.read_text(encoding="utf-8"), flags=re.S)
        name = str(doc.relative_to(REPO))
        for block in re.findall(r"^```(?:sh|bash|shell|console)\n(.*?)^```", text, flags=re.S | re.M):
            found += [(name, c) for c in map(_strip_comment, block.splitlines()) if c]
        prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
        found += [(name, c) for c in re.findall(r"`([^`\n]+)`", prose) if _COMMAND_START.match(c)]
    return found


def check_executable(command: str, tmp_path: Path) -> None:
    substitution = re.match(r"\$\((scripts/[\w-]+)\)", command)
    if substitution:
        script = REPO / substitution.group(1)
        assert os.access(script, os.X_OK), f"{script} is not an executable script"
        result = subprocess.run([str(script), "--print-path"], cwd=REPO, capture_output=True, text=True)
        if result.returncode != 0:
            missing(f"{substitution.group(1)} has not built its binary yet")
        assert os.access(result.stdout.strip().splitlines()[-1], os.X_OK)
        return
    word = shlex.split(command)[0]
    if word in _BUILTINS:
        return
    if word == "docker":
        # No Docker daemon here: Docker Compose, built from source, checks the
        # file the command uses and knows the subcommand.
        binary = compose_binary()
        subcommand = shlex.split(command)[2]
        env = dict(os.environ, DOCKER_CONFIG=str(tmp_path))
        config = subprocess.run([binary, "config", "--quiet"], cwd=REPO, capture_output=True, text=True, env=env,
                                timeout=120)
        assert config.returncode == 0, config.stderr
        usage = subprocess.run([binary, subcommand, "--help"], cwd=REPO, capture_output=True, text=True, env=env)
        assert usage.returncode == 0, f"docker compose has no subcommand {subcommand!r}"
        return
    if "/" in word:
        path = REPO / word
        assert path.is_file() and os.access(path, os.X_OK), f"{word} does not exist after set-up"
        return
    # The project's packages live in .venv: a bare python (or pip) would be the system's.
    assert word not in ("python", "python3", "pip", "pip3"), f"{command!r}: write .venv/bin/{word.rstrip('3')}"
    assert shutil.which(word), f"{word} is not on PATH after scripts/bootstrap; write the path that works"


def test_the_docs_show_commands():
    commands = [c for _, c in shown_commands()]
    assert "scripts/demo" in commands and "scripts/test" in commands
    assert any(c.startswith("docker compose up") for c in commands)
    assert any(c.startswith("$(scripts/build-collector)") for c in commands)


@pytest.mark.parametrize("doc,command", shown_commands(), ids=lambda v: v[:60])
def test_each_shown_command_names_an_executable_that_exists(doc, command, tmp_path):
    check_executable(command, tmp_path)


def _push_block() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"^```sh\n(.*?)^```", readme, flags=re.S | re.M)
                 if "scripts/build-collector" in b)
    return [c for c in map(_strip_comment, block.splitlines()) if c]


def _start(command: str, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(["bash", "-c", command], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(log, "w"), start_new_session=True)


@pytest.mark.e2e
def test_readme_push_block_runs_as_written(redis_url, tmp_path):
    """Collector, gunicorn and the RQ worker from the README; a job's metrics reach the collector."""
    collector_line, *rest = _push_block()
    exports = [c for c in rest if c.startswith("export ")]
    servers = [c for c in rest if not c.startswith("export ")]
    assert collector_line.startswith("$(scripts/build-collector)") and len(servers) == 2
    check_executable(collector_line, tmp_path)

    env = dict(os.environ)
    for line in exports:
        for assignment in shlex.split(line)[1:]:
            key, _, value = assignment.partition("=")
            env[key] = os.path.expandvars(value)
    # The same commands, on free ports and this test's Redis (the defaults may be in use here).
    ports = {name: free_port() for name in ("grpc", "http", "prom", "health", "self")}
    env.update({
        "OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['grpc']}", "OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports['http']}",
        "PROMETHEUS_EXPORTER_ENDPOINT": f"127.0.0.1:{ports['prom']}",
        "HEALTH_CHECK_ENDPOINT": f"127.0.0.1:{ports['health']}", "OTELCOL_METRICS_PORT": str(ports["self"]),
        "OTEL_EXPORTER_OTLP_ENDPOINT": env["OTEL_EXPORTER_OTLP_ENDPOINT"].replace(":4318", f":{ports['http']}"),
        "SUBLARR_REDIS_URL": redis_url, "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "SUBLARR_DATA_DIR": str(tmp_path), "SUBLARR_DATABASE_URL": f"sqlite:///{tmp_path / 'sublarr.db'}",
        "SUBLARR_SIM_LATENCY_SCALE": "0", "SUBLARR_SIM_FAILURE_RATE": "0",
    })
    web_port = free_port()
    env["GUNICORN_CMD_ARGS"] = f"--bind 127.0.0.1:{web_port}"
    assert env["OTEL_METRICS_EXPORTER"] == "otlp"

    processes = []
    try:
        processes.append(_start(collector_line, env, tmp_path / "collector.log"))
        wait_for(lambda: answers_ok(f"http://127.0.0.1:{ports['health']}/"), timeout=60, interval=0.2,
                 what="the collector's health check")
        for i, line in enumerate(servers):
            processes.append(_start(line, env, tmp_path / f"server{i}.log"))
        base = f"http://127.0.0.1:{web_port}/api/v1"
        wait_for(lambda: answers_ok(base + "/health"), timeout=60, interval=0.2, what="gunicorn to serve")
        response = requests.post(base + "/jobs", json={"file_path": "/media/a.en.srt"}, timeout=10)
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        wait_for(lambda: requests.get(f"{base}/jobs/{job_id}", timeout=5).json()["status"] in ("success", "failed", "skipped"),
                 timeout=60, interval=0.3, what="the RQ worker to run the job")

        posted = re.compile(r'sublarr_http_requests_total\{[^}]*endpoint="/api/v1/jobs"[^}]*method="POST"')

        def arrived():
            # Each gunicorn worker pushes its own series; the POST's worker may report last.
            text = requests.get(f"http://127.0.0.1:{ports['prom']}/metrics", timeout=5).text
            return text if "sublarr_jobs_total{" in text and posted.search(text) else None
        wait_for(arrived, timeout=30, interval=0.5,
                 what="the POST (gunicorn) and the job (RQ worker) at the collector")
        assert all(p.poll() is None for p in processes), [p.returncode for p in processes]
    except BaseException:
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        raise
    finally:
        for process in reversed(processes):
            terminate(process)
