"""Signed node-to-node requests for the statistics protocol.

The endpoint and the audience (the target's member address) come from the ConsortiumRegistry, never
from a request. JSON bodies for protocol messages; the insurer's label batches go as raw bytes
(32-byte points, then fixed-width ciphertexts), which the signature covers like any body.

Answers are read as a stream and cut off past ``max_bytes`` (set per message from the job's size):
a peer cannot make the requester hold an arbitrarily large answer in memory.
"""
from __future__ import annotations

import json
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from node.auth import sign_request


class PeerError(Exception):
    """A peer answered with a refusal (``status`` 4xx, ``reason`` from its problem body) or not at all."""

    def __init__(self, status: int | None, reason: str, message: str, final: bool = False):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.final = final

    @property
    def definitive(self) -> bool:
        """A 4xx refusal is the peer's answer; anything else (no answer, 5xx) may succeed on retry."""
        return self.final or (self.status is not None and 400 <= self.status < 500 and self.status not in (408, 425, 429))


class PeerClient:
    def __init__(self, endpoint: str, account: LocalAccount, audience: str, chain_id: int, timeout: float = 120.0,
                 max_bytes: int = 8 * 1024 * 1024):
        self.max_bytes = max_bytes
        self.audience = audience
        self.account = account
        self.chain_id = chain_id
        self.http = httpx.Client(base_url=endpoint.rstrip("/"), timeout=httpx.Timeout(timeout, connect=5.0))

    def _send(self, path: str, raw: bytes, content_type: str, max_bytes: int | None = None) -> tuple[int, bytes]:
        headers = {"content-type": content_type, **sign_request(self.account, self.chain_id, self.audience, "POST", path, raw)}
        limit = max_bytes or self.max_bytes
        try:
            with self.http.stream("POST", path, content=raw, headers=headers) as response:
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    raise _too_large(path, limit)
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise _too_large(path, limit)
                status = response.status_code
        except httpx.HTTPError as exc:
            raise PeerError(None, "unreachable", f"{type(exc).__name__}: {exc}") from None
        if status >= 300:
            try:
                detail = json.loads(body).get("detail", {})
                reason, message = detail.get("reason", "refused"), detail.get("message", bytes(body[:200]).decode(errors="replace"))
            except (ValueError, AttributeError):
                reason, message = "refused", bytes(body[:200]).decode(errors="replace")
            raise PeerError(status, reason, message)
        return status, bytes(body)

    def post_json(self, path: str, body: Any, max_bytes: int | None = None) -> dict:
        return _json(self._send(path, json.dumps(body).encode(), "application/json", max_bytes)[1], path)

    def post_bytes(self, path: str, raw: bytes, max_bytes: int | None = None) -> dict:
        return _json(self._send(path, raw, "application/octet-stream", max_bytes)[1], path)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "PeerClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _too_large(path: str, limit: int) -> PeerError:
    return PeerError(None, "answer_too_large", f"the answer to {path} exceeds {limit} bytes, more than the job can need",
                     final=True)


def _json(raw: bytes, path: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise PeerError(None, "malformed_answer", f"the answer to {path} is not JSON", final=True) from None
