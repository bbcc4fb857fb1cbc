"""pytest fixtures around tests/servers.py: one Redis and one PostgreSQL per session.

Registered from conftest.py via ``pytest_plugins = ["server_fixtures"]``.
A missing binary goes through support.missing (fail under CI, skip elsewhere);
a server that is installed but will not start is a test error, never a skip.
"""
from __future__ import annotations

import itertools
import re

import pytest

from servers import PostgresServer, RedisServer, ServerUnavailable
from support import missing

_db_numbers = itertools.count(1)


def _start(factory):
    """Build and start a server, or report the missing installation."""
    try:
        server = factory()
    except ServerUnavailable as exc:
        missing(str(exc))
    try:
        return server.start()
    except BaseException:
        server.close()
        raise


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server on a free port; closed (process + temp dir) at session end."""
    server = _start(RedisServer)
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL cluster on a free port; closed at session end."""
    server = _start(PostgresServer)
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server):
    """URL of an empty Redis: undoes earlier pause()/stop(), then FLUSHALL."""
    redis_server.ensure_running()
    redis_server.flushall()
    return redis_server.url


@pytest.fixture
def postgres_url(request, postgres_server):
    """URL of a fresh database for this test only; dropped (forcibly) afterwards."""
    postgres_server.ensure_running()
    stem = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    name = f"t{next(_db_numbers)}_{stem}"
    url = postgres_server.create_database(name)
    yield url
    if postgres_server.running:
        postgres_server.drop_database(name)
