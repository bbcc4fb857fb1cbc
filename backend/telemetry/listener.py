"""Serving the metrics path on its own port and interface instead of the app's.

For a single-process server whose app port is exposed more widely than
metrics should be (``SUBLARR_METRICS_LISTEN=127.0.0.1:9464``). Several worker
processes cannot share one port: they push over OTLP instead.
"""
from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from .exposition import Exposition

Respond = Callable[[str | None, str | None, str | None], Exposition]


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; raises ``OSError`` saying why not.

    The address family is chosen as werkzeug chooses it (IPv6 when the host
    holds a ':'), so the server it builds on this descriptor agrees.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, socket.IPPROTO_TCP)[0][4]
    listening = socket.socket(family, socket.SOCK_STREAM)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
        listening.listen(128)
    except BaseException:
        listening.close()
        raise
    return listening


class MetricsListener:
    def __init__(self, host: str, port: int, path: str, respond: Respond):
        from werkzeug.serving import make_server

        self.path = path
        self._respond = respond
        listening = bind(host, port)
        try:  # werkzeug's own bind would print and sys.exit() on a busy port or an unknown host
            self._server = make_server(host, port, self._wsgi, threaded=True, fd=listening.fileno())
        finally:
            listening.close()  # the server holds its own duplicate of the descriptor
        self._thread = threading.Thread(target=self._server.serve_forever, name="sublarr-metrics-listener",
                                        daemon=True)

    @property
    def port(self) -> int:
        return self._server.port  # the bound one when 0 was asked for

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
