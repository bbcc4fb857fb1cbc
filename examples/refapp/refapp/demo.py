"""``python -m refapp.demo`` (``scripts/demo``): the reference app, instrumented, under traffic.

Embedded defaults only (SQLite in a temporary data directory, memory cache,
memory queue), whatever ``SUBLARR_DATABASE_URL`` or ``SUBLARR_REDIS_URL`` say,
so the demo runs from a fresh clone with nothing else installed.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

_EMBEDDED_ONLY = ("SUBLARR_DATABASE_URL", "SUBLARR_REDIS_URL")


def _stop_on_signals(stop: threading.Event):
    """Ctrl-C and SIGTERM stop the demo however it was started.

    A process started in the background by a non-interactive shell (``&``), by
    many CI runners and by some supervisors inherits SIGINT as *ignored*, and
    Python then installs no KeyboardInterrupt handler: Ctrl-C (or ``kill
    -INT``) would do nothing. So both handlers are set explicitly; they only
    set ``stop``, so a signal at any moment ends the demo the same clean way.
    Returns a function that puts the previous handlers back.
    """
    def handler(signum, frame):
        stop.set()
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # only the main thread may set handlers; its caller owns them
    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    return lambda: [signal.signal(signum, old) for signum, old in previous.items()]


def run_demo(host: str = "127.0.0.1", port: int = 8000, rate: float = 20.0,
             duration: float | None = None, seed: int | None = None, out=None) -> int:
    out = out or sys.stdout
    try:
        from werkzeug.serving import make_server

        from .app import create_app
        from .config import Config
        from .traffic import TrafficGenerator
    except ImportError as exc:
        print(f"the demo needs the reference app and its extras ({exc}); "
              "install with: pip install -e '.[refapp]'", file=sys.stderr)
        return 2

    env = {k: v for k, v in os.environ.items() if k not in _EMBEDDED_ONLY}
    # The reference app's own route is /api/v1/metrics (Sublarr's); the demo serves /metrics too.
    os.environ.setdefault("SUBLARR_METRICS_PATH", "/metrics")
    app = create_app(Config.from_env(env))
    app.logger.addFilter(_hide_deliberate_errors)
    import logging
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns the progress line
    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as exc:
        print(f"cannot listen on {host}:{port}: {exc}; choose another --port", file=sys.stderr)
        return 1
    port = server.server_port
    shown_host = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown_host = "127.0.0.1"
    base_url = f"http://{shown_host}:{port}"
    telemetry = app.extensions.get("sublarr_telemetry")
    metrics_path = telemetry.settings.path if telemetry else "/metrics"
    stop = threading.Event()
    restore_signals = _stop_on_signals(stop)
    print(f"Sublarr reference app: {base_url}/api/v1/status", file=out)
    print(f"Metrics:               {base_url}{metrics_path}", file=out)
    print(f"Traffic: {rate:g} requests/s{'' if duration is None else f' for {duration:g}s'}; Ctrl-C stops.",
          file=out, flush=True)

    serving = threading.Thread(target=server.serve_forever, name="demo-server", daemon=True)
    serving.start()
    generator = TrafficGenerator(base_url, rate=rate, seed=seed) if rate > 0 else None
    traffic = None
    if generator is not None:
        traffic = threading.Thread(target=generator.run, kwargs={"stop_event": stop},
                                   name="demo-traffic", daemon=True)
        traffic.start()

    started = time.monotonic()
    interactive = out.isatty() if hasattr(out, "isatty") else False
    last_line = 0.0
    try:
        while duration is None or time.monotonic() - started < duration:
            if stop.wait(0.5):
                break
            now = time.monotonic()
            if interactive or now - last_line >= 5:
                last_line = now
                line = _progress(now - started, generator)
                print(("\r" + line) if interactive else line, end="" if interactive else "\n",
                      file=out, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if traffic is not None:
            traffic.join(timeout=5)
        server.shutdown()
        queue = getattr(app, "job_queue", None)
        if queue is not None and hasattr(queue, "shutdown"):
            queue.shutdown(wait=False)
        if telemetry is not None:
            telemetry.shutdown()
        restore_signals()
    try:
        print(("\n" if interactive else "") + "demo stopped", file=out, flush=True)
    except BrokenPipeError:  # the reader went away first (e.g. `| head`)
        pass
    return 0


def _hide_deliberate_errors(record) -> bool:
    """The traffic mix calls an error route on purpose; its tracebacks are noise here."""
    return "/debug/error" not in record.getMessage()


def _progress(elapsed: float, generator) -> str:
    if generator is None:
        return f"[demo] {elapsed:6.1f}s  serving, no generated traffic"
    stats = generator.stats
    by_class: dict[str, int] = {}
    for status, count in stats.by_status.items():
        key = f"{str(status)[0]}xx"
        by_class[key] = by_class.get(key, 0) + count
    classes = "  ".join(f"{k} {v}" for k, v in sorted(by_class.items()))
    return f"[demo] {elapsed:6.1f}s  requests {stats.total}  {classes}  errors {stats.errors}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo", description="run the instrumented reference app "
                                                                        "with generated traffic")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on; 0 picks a free one (default 8000)")
    parser.add_argument("--rate", type=float, default=20.0, help="generated requests per second (default 20; 0 = none)")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--seed", type=int, default=None, help="seed for a repeatable traffic mix")
    args = parser.parse_args(argv)
    return run_demo(host=args.host, port=args.port, rate=args.rate, duration=args.duration, seed=args.seed)


if __name__ == "__main__":
    sys.exit(main())
