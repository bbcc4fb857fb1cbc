"""Real Redis and PostgreSQL servers for tests: own processes, free ports, temp dirs.

Independent of pytest (server_fixtures.py wraps them as fixtures), and free of
client libraries: readiness checks speak RESP over a socket or use the
PostgreSQL client binaries, so a broken driver cannot hide a broken server.

Lifecycle: ``start()`` launches, ``stop()`` ends the process but keeps the data
dir and port (so ``start()`` can bring the same server back), ``close()`` ends
it for good and deletes the temp dir. Context managers and an atexit hook
call ``close()`` so no server outlives the test run.
"""
from __future__ import annotations

import atexit
import ctypes
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.net import free_port

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
_LIVE: set["_Server"] = set()


class ServerUnavailable(RuntimeError):
    """The server's binaries are not installed (a skip/CI failure, not a bug)."""


class ServerError(RuntimeError):
    """The server is installed but did not start or stop as expected."""


def configured_binary(variable: str) -> str | None:
    """The executable the environment variable ``variable`` names, if set."""
    configured = os.environ.get(variable)
    if configured and not os.access(configured, os.X_OK):
        raise ServerUnavailable(f"{variable}={configured} is not an executable")
    return configured or None


def built_path(script: Path, what: str) -> str:
    """Where ``script --print-path`` says its build is; never builds (the tests only ask)."""
    try:
        result = subprocess.run([str(script), "--print-path"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServerUnavailable(f"{what}: {script} failed ({exc})") from None
    lines = result.stdout.strip().splitlines()
    path = lines[-1] if lines else ""
    if result.returncode != 0 or not path:
        raise ServerUnavailable(f"{what} is not built (expected {path or '?'}); run scripts/{script.name}")
    return path


def _load_prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl() if sys.platform.startswith("linux") else None


def _die_with_parent(sig: int):
    """preexec_fn: the kernel signals the server if the test process is SIGKILLed."""
    if _PRCTL is None:
        return None
    return lambda: _PRCTL(1, int(sig))  # PR_SET_PDEATHSIG, set after the uid switch


@atexit.register
def _close_all() -> None:
    """Safety net for servers whose owner never reached close()."""
    for server in list(_LIVE):
        server.close()


class _Server:
    """Shared process handling: launch, bounded readiness wait, stop, cleanup."""

    name = "server"
    stop_signal = signal.SIGTERM
    death_signal = signal.SIGTERM

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"sublarr-{self.name}-", dir=self._temp_base()))
        self.port = free_port()
        self.log_path = self.dir / f"{self.name}.log"
        self._proc: subprocess.Popen | None = None
        self._paused = False
        self._ever_ready = False
        _LIVE.add(self)

    # -- hooks for subclasses ------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _popen_kwargs(self) -> dict:
        return {}

    @staticmethod
    def _temp_base() -> str | None:
        return None

    # -- lifecycle -----------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, retries: int = 3):
        """Launch and wait until it answers (no-op when running).

        Only the first start may move to a new port when another process won
        the race for it; later starts keep the port clients already know.
        """
        if self.running:
            return self
        attempts = 1 if self._ever_ready else retries
        for attempt in range(attempts):
            log_offset = self._log_size()
            self._launch()
            try:
                self._wait_ready()
                self._ever_ready = True
                return self
            except ServerError:
                port_taken = "already in use" in self._log_since(log_offset).lower()
                self._terminate()
                if not port_taken or attempt == attempts - 1:
                    raise
                self.port = free_port()
        return self

    def stop(self) -> None:
        """End the process; data dir and port stay for a later start()."""
        self._terminate()

    def restart(self):
        """Stop then start on the same port and data dir."""
        self.stop()
        return self.start()

    def ensure_running(self) -> None:
        """Undo a test's pause()/stop() so the next test gets a working server."""
        if self._paused:
            self.resume()
        if not self.running:
            self.start()

    def close(self) -> None:
        """End the process and delete the temp dir; safe to call twice."""
        self._terminate()
        shutil.rmtree(self.dir, ignore_errors=True)
        _LIVE.discard(self)

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts TCP connections, nothing answers."""
        os.kill(self._require_pid(), signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        os.kill(self._require_pid(), signal.SIGCONT)
        self._paused = False

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals -----------------------------------------------------------
    def _require_pid(self) -> int:
        if not self.running:
            raise ServerError(f"{self.name} is not running")
        return self._proc.pid

    def _launch(self) -> None:
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self._command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.dir, start_new_session=True,
                preexec_fn=_die_with_parent(self.death_signal), **self._popen_kwargs(),
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with {self._proc.returncode} while starting "
                    f"on port {self.port}; log:\n{self.log_tail()}")
            if self._ready():
                return
            time.sleep(0.05)
        raise ServerError(
            f"{self.name} not ready on port {self.port} after {START_TIMEOUT}s; log:\n{self.log_tail()}")

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        if self._paused:  # a stopped process only acts on signals once continued
            os.kill(proc.pid, signal.SIGCONT)
            self._paused = False
        for sig, wait in ((self.stop_signal, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
            proc.send_signal(sig)
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


def _resp_command(port: int, *args: str, timeout: float = 1.0) -> bytes:
    """Send one RESP command and return the first reply line (b'' on failure)."""
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(payload)
            return conn.makefile("rb").readline().rstrip(b"\r\n")
    except OSError:
        return b""


class RedisServer(_Server):
    """redis-server without persistence: a restart starts empty."""

    name = "redis"

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or shutil.which("redis-server")
        if self.binary is None:
            raise ServerUnavailable("redis-server is not installed")
        super().__init__()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, *args: str) -> bytes:
        """Run a command over a raw socket; returns the reply's first line."""
        return _resp_command(self.port, *args)

    def flushall(self) -> None:
        reply = self.command("FLUSHALL")
        if reply != b"+OK":
            raise ServerError(f"FLUSHALL answered {reply!r}; log:\n{self.log_tail()}")

    def _command(self) -> list[str]:
        return [self.binary, "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(self.dir), "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--protected-mode", "yes"]

    def _ready(self) -> bool:
        return self.command("PING") == b"+PONG"


def _version_key(path: str) -> tuple:
    return tuple(int(n) for n in re.findall(r"\d+", path))


def find_postgres_bindir() -> Path | None:
    """pg_config's bindir, else the highest /usr/lib/postgresql/*/bin, else PATH."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                 timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and (Path(out) / "initdb").exists():
            return Path(out)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    """PostgreSQL refuses root; create the usual system user when absent."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True)
        return pwd.getpwnam(name)


def _world_traversable(path: str) -> bool:
    parts = Path(path).resolve()
    return all(os.stat(p).st_mode & 0o001 for p in [parts, *parts.parents])


class PostgresServer(_Server):
    """A throwaway cluster (trust auth, no fsync) with database `sublarr_test`.

    As root the server runs as the `postgres` system user, via Popen(user=...)
    rather than runuser: runuser forks and turns our SIGINT (fast shutdown)
    into SIGTERM plus a SIGKILL, while Popen keeps the postmaster as our child.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown: abort sessions, clean checkpoint
    death_signal = signal.SIGQUIT  # immediate shutdown if the test run dies
    database = "sublarr_test"
    user = "postgres"

    def __init__(self, bindir: str | Path | None = None) -> None:
        found = Path(bindir) if bindir else find_postgres_bindir()
        if found is None or not (found / "initdb").exists():
            raise ServerUnavailable("PostgreSQL (initdb) is not installed")
        self.bindir = found
        self._run_as = _ensure_system_user(self.user) if os.geteuid() == 0 else None
        super().__init__()
        self.data = self.dir / "data"
        self.sockets = self.dir / "sockets"
        self.sockets.mkdir()
        if self._run_as:
            for path in (self.dir, self.sockets):
                os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self, retries: int = 3):
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
            super().start(retries)
            self.create_database(self.database)
            return self
        return super().start(retries)

    def create_database(self, name: str) -> str:
        """CREATE DATABASE name; returns its SQLAlchemy URL."""
        self.sql(f'CREATE DATABASE "{_identifier(name)}"')
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """DROP ... WITH (FORCE): ends sessions a test's pool left open."""
        self.sql(f'DROP DATABASE IF EXISTS "{_identifier(name)}" WITH (FORCE)')

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement through psql (no driver needed); returns its output."""
        result = subprocess.run(
            [str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
             "-d", database, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", statement],
            capture_output=True, text=True, timeout=30, env=self._client_env())
        if result.returncode != 0:
            raise ServerError(f"psql failed ({statement}): {result.stderr.strip()}")
        return result.stdout.strip()

    # -- internals -----------------------------------------------------------
    @staticmethod
    def _temp_base() -> str | None:
        """As root, a base the postgres user can reach (TMPDIR may be private)."""
        base = tempfile.gettempdir()
        if os.geteuid() == 0 and not _world_traversable(base):
            return "/tmp"
        return None

    def _popen_kwargs(self) -> dict:
        kwargs = {"env": self._server_env()}
        if self._run_as:
            kwargs.update(user=self._run_as.pw_uid, group=self._run_as.pw_gid, extra_groups=[])
        return kwargs

    def _server_env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(HOME=str(self.dir), LC_ALL="C")
        return env

    def _client_env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGCONNECT_TIMEOUT"] = "5"
        return env

    def _initdb(self) -> None:
        cmd = [str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user,
               "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"]
        with open(self.log_path, "ab") as log:
            result = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=self.dir, timeout=120,
                                    **self._popen_kwargs())
        if result.returncode != 0:
            raise ServerError(f"initdb failed with {result.returncode}; log:\n{self.log_tail()}")

    def _command(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1", "port": str(self.port),
            "unix_socket_directories": str(self.sockets), "fsync": "off",
            "synchronous_commit": "off", "full_page_writes": "off",
            "shared_buffers": "16MB", "logging_collector": "off",
        }
        cmd = [str(self.bindir / "postgres"), "-D", str(self.data)]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        return cmd

    def _ready(self) -> bool:
        result = subprocess.run(
            [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", self.user, "-d", "postgres", "-t", "1"],
            capture_output=True, timeout=10, env=self._client_env())
        return result.returncode == 0


def _identifier(name: str) -> str:
    """Database names come from tests; keep them plain so quoting stays trivial."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"not a plain database name: {name!r}")
    return name
