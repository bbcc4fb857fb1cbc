"""Protecting the metrics path: none, bearer token or basic auth.

Comparison is constant-time over the whole credential, a failure answers 401
with a ``WWW-Authenticate`` challenge, and the secret appears in no log line,
error message or repr.
"""
from __future__ import annotations

import base64
import hmac

from .settings import Settings

REALM = "sublarr-metrics"


class ScrapeAuth:
    def __init__(self, mode: str, expected: bytes | None):
        self.mode = mode
        self._expected = expected

    def __repr__(self) -> str:  # never show the credential
        return f"ScrapeAuth(mode={self.mode!r})"

    @classmethod
    def from_settings(cls, settings: Settings) -> "ScrapeAuth":
        if settings.auth == "bearer":
            return cls("bearer", settings.token.encode())
        if settings.auth == "basic":
            return cls("basic", f"{settings.username}:{settings.password}".encode())
        return cls("none", None)

    @property
    def required(self) -> bool:
        return self.mode != "none"

    def allows(self, authorization: str | None) -> bool:
        if not self.required:
            return True
        scheme, _, credential = (authorization or "").partition(" ")
        if scheme.lower() != self.mode:
            hmac.compare_digest(b"", self._expected)  # same work on every failure path
            return False
        credential = credential.strip()
        if self.mode == "basic":
            try:
                supplied = base64.b64decode(credential.encode("ascii"), validate=True)
            except (ValueError, UnicodeEncodeError):
                supplied = b""
        else:
            supplied = credential.encode("utf-8", "surrogateescape")
        return hmac.compare_digest(supplied, self._expected)

    def challenge(self) -> tuple[str, str]:
        if self.mode == "basic":
            return ("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
        return ("WWW-Authenticate", f'Bearer realm="{REALM}"')
