"""The subprocesses of one end-to-end test, and asking one whether it serves."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.support import REPO, terminate


def refapp_env(data_dir: Path, postgres_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of the reference app's processes in an end-to-end stack: this
    environment without any OTEL_/SUBLARR_ setting, then the stack's (a simulated
    provider latency and failure rate, fixed seed, loopback only), then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SUBLARR_"))}
    env.update(
        PYTHONPATH=str(REPO / "backend"), SUBLARR_DATABASE_URL=postgres_url, SUBLARR_REDIS_URL=redis_url,
        SUBLARR_DATA_DIR=str(data_dir), SUBLARR_SIM_LATENCY_SCALE="0.1", SUBLARR_SIM_FAILURE_RATE="0.2",
        SUBLARR_SIM_SEED="7", SUBLARR_HOST="127.0.0.1", **extra)
    return env


class Processes:
    """Python subprocesses of one test, each logging to ``<name>.log`` in ``log_dir``;
    stopped in reverse order of starting."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.procs = []

    def start(self, name: str, args: list[str], env: dict) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "w")
        proc = subprocess.Popen([sys.executable, *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                cwd=self.log_dir)
        self.procs.append((name, proc, log))
        return proc

    def check_alive(self) -> None:
        for name, proc, _ in self.procs:
            assert proc.poll() is None, f"{name} exited with {proc.returncode}:\n{self.tail(name)}"

    def tail(self, name: str, chars: int = 3000) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        for _, proc, log in reversed(self.procs):
            terminate(proc, timeout=15)
            log.close()
