"""Errors a user can act on: each carries one line saying what is wrong and what to do next."""
from __future__ import annotations


class ConsortiumError(Exception):
    """Base of every error the CLI reports as one line (no traceback unless --debug)."""

    #: machine-readable reason, also used as the HTTP error code
    reason: str = "error"

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
