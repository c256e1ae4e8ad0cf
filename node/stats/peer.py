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

from node.access.auth import sign_request
from node.chain.ledger import Ledger
from node.errors import parse_problem
from node.stats.spec import horizontal_spec, join_spec


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
            raise PeerError(status, *parse_problem(bytes(body)))
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


class Peers:
    """Signed clients to other members' nodes: endpoint and audience from the registry, never from a request."""

    def __init__(self, ledger: Ledger, chain_id: int, answer_max_bytes: int):
        self.ledger = ledger
        self.chain_id = chain_id
        self.answer_max_bytes = answer_max_bytes  # the setting peer_answer_max_bytes: the floor of every limit

    def client(self, participant: str, timeout: float = 120.0) -> PeerClient:
        member = self.ledger.member(participant)
        return PeerClient(member.endpoint, self.ledger.account, participant, self.chain_id, timeout,
                          max_bytes=self.answer_max_bytes)

    def name(self, participant: str) -> str:
        return self.ledger.member(participant).name or participant

    def answer_limit(self, job: dict, message: str, own_rows: int = 0) -> int:
        return answer_limit(self.answer_max_bytes, job, message, own_rows)


def answer_limit(floor: int, job: dict, message: str, own_rows: int = 0) -> int:
    """The most bytes a peer's answer to ``message`` can need for this job, doubled, and never under ``floor``
    (the ``peer_answer_max_bytes`` setting): answers are ciphertexts and points whose number the spec fixes."""
    public = job["public_spec"]
    hex_ciphertext = 2 * ((int(public["key_bits"]) * 2 + 7) // 8) + 16
    if message == "contribute":
        need = horizontal_spec(public).layout.plaintext_count * hex_ciphertext
    elif message == "fraud":
        need = int(public["persons"]) * 2 * 70
    elif message == "vertical/finish":
        need = len(public["buckets"]) * (join_spec(public).layout.plaintext_count * hex_ciphertext + 200)
    else:  # vertical/start: the platform's blinded ids per bucket, 64 hex characters each
        padded = (public.get("pad_to") or 0) * len(public["buckets"])
        need = 70 * max(padded, 10 * own_rows, 1_000_000)
    return max(floor, 2 * need + 65536)


def _too_large(path: str, limit: int) -> PeerError:
    return PeerError(None, "answer_too_large", f"the answer to {path} exceeds {limit} bytes, more than the job can need",
                     final=True)


def _json(raw: bytes, path: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise PeerError(None, "malformed_answer", f"the answer to {path} is not JSON", final=True) from None
