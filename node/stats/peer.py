"""Signed node-to-node requests for the statistics protocol.

The endpoint and the audience (the target's member address) come from the ConsortiumRegistry, never
from a request. JSON bodies for protocol messages; the insurer's label batches go as raw bytes
(32-byte points, then fixed-width ciphertexts), which the signature covers like any body.
"""
from __future__ import annotations

import json
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from node.auth import sign_request


class PeerError(Exception):
    """A peer answered with a refusal (``status`` 4xx, ``reason`` from its problem body) or not at all."""

    def __init__(self, status: int | None, reason: str, message: str):
        super().__init__(message)
        self.status = status
        self.reason = reason

    @property
    def definitive(self) -> bool:
        """A 4xx refusal is the peer's answer; anything else (no answer, 5xx) may succeed on retry."""
        return self.status is not None and 400 <= self.status < 500 and self.status not in (408, 425, 429)


class PeerClient:
    def __init__(self, endpoint: str, account: LocalAccount, audience: str, chain_id: int, timeout: float = 120.0):
        self.audience = audience
        self.account = account
        self.chain_id = chain_id
        self.http = httpx.Client(base_url=endpoint.rstrip("/"), timeout=httpx.Timeout(timeout, connect=5.0))

    def _send(self, path: str, raw: bytes, content_type: str) -> httpx.Response:
        headers = {"content-type": content_type, **sign_request(self.account, self.chain_id, self.audience, "POST", path, raw)}
        try:
            response = self.http.post(path, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            raise PeerError(None, "unreachable", f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 300:
            try:
                detail = response.json().get("detail", {})
                reason, message = detail.get("reason", "refused"), detail.get("message", response.text[:200])
            except (ValueError, AttributeError):
                reason, message = "refused", response.text[:200]
            raise PeerError(response.status_code, reason, message)
        return response

    def post_json(self, path: str, body: Any) -> dict:
        return self._send(path, json.dumps(body).encode(), "application/json").json()

    def post_bytes(self, path: str, raw: bytes) -> dict:
        return self._send(path, raw, "application/octet-stream").json()

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "PeerClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
