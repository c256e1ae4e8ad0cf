"""Errors a user can act on: each carries one line saying what is wrong and what to do next."""
from __future__ import annotations

import json


class ConsortiumError(Exception):
    """Base of every error the CLI reports as one line (no traceback unless --debug)."""

    #: machine-readable reason, also used as the HTTP error code
    reason: str = "error"
    #: the HTTP status a route answers with when this error reaches it (node/api/deps.py, ``problem_response``)
    http_status: int = 400

    def __init__(self, message: str, *, hint: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.hint = hint
        if reason is not None:
            self.reason = reason

    def one_line(self) -> str:
        text = str(self)
        return f"{text}; {self.hint}" if self.hint else text


class ConfigError(ConsortiumError):
    reason = "config"


class KeyStoreError(ConsortiumError):
    reason = "keystore"


def parse_problem(body: bytes | str, default_reason: str = "refused") -> tuple[str, str]:
    """(reason, message) of an error answer: the node's one error shape is ``{"detail": {"reason", "message"}}``;
    anything else (a proxy's HTML page, a truncated body) gives ``default_reason`` and the body's start."""
    text = body.decode(errors="replace") if isinstance(body, (bytes, bytearray)) else body
    try:
        detail = json.loads(text).get("detail", {})
        return str(detail.get("reason", default_reason)), str(detail.get("message", text[:200]))
    except (ValueError, AttributeError):
        return default_reason, text[:200]
