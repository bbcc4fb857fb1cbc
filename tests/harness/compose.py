"""Docker Compose for checking the compose files (no Docker daemon needed for ``config``)."""
from __future__ import annotations

import shutil

from harness.servers import ServerUnavailable, built_path, configured_binary
from harness.support import REPO, missing


def compose_binary() -> str:
    """SUBLARR_DOCKER_COMPOSE, else ``docker-compose`` on PATH, else the build of
    scripts/build-compose; a missing one fails under CI and skips elsewhere."""
    try:
        return (configured_binary("SUBLARR_DOCKER_COMPOSE") or shutil.which("docker-compose")
                or built_path(REPO / "scripts" / "build-compose", "Docker Compose"))
    except ServerUnavailable as exc:
        missing(str(exc))
