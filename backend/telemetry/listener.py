"""Serving the metrics path on its own port and interface instead of the app's.

For a single-process server whose app port is exposed more widely than
metrics should be (``SUBLARR_METRICS_LISTEN=127.0.0.1:9464``). Several worker
processes cannot share one port: they push over OTLP instead.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from .exposition import Exposition

Respond = Callable[[str | None, str | None, str | None], Exposition]


class MetricsListener:
    def __init__(self, host: str, port: int, path: str, respond: Respond):
        from werkzeug.serving import make_server

        self.path = path
        self._respond = respond
        self._server = make_server(host, port, self._wsgi, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="sublarr-metrics-listener",
                                        daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_port

    def start(self) -> "MetricsListener":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _wsgi(self, environ, start_response):
        if environ.get("PATH_INFO") != self.path:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: metrics are served on " + self.path.encode() + b"\n"]
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        exposition = self._respond(environ.get("HTTP_ACCEPT"), environ.get("HTTP_ACCEPT_ENCODING"),
                                   environ.get("HTTP_AUTHORIZATION"))
        reason = {200: "OK", 401: "Unauthorized", 503: "Service Unavailable"}.get(exposition.status, "")
        start_response(f"{exposition.status} {reason}", list(exposition.headers))
        return [exposition.body]
