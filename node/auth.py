"""Request signing between nodes and from clients (EIP-712 typed data).

Every request carries the signer's address, a timestamp, a random nonce and an EIP-712 signature
over (method, path with query, SHA-256 of the body, timestamp, nonce, audience). The audience is the
receiving node's account, so a request signed for one node cannot be replayed at another.
The receiver checks the signature, the time window, and that the nonce was never seen (in its store).
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from sqlalchemy import BigInteger, Column, LargeBinary, MetaData, String, Table, delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from web3 import Web3

from node.errors import ConsortiumError
from node.store.db import migrate

HEADER_SIGNER = "x-consortium-signer"
HEADER_TIMESTAMP = "x-consortium-timestamp"
HEADER_NONCE = "x-consortium-nonce"
HEADER_SIGNATURE = "x-consortium-signature"

SCHEMA_VERSION = 1
metadata = MetaData()
seen_nonces = Table("auth_nonces", metadata, Column("signer", String(42), primary_key=True),
                    Column("nonce", LargeBinary(32), primary_key=True), Column("seen_at", BigInteger, nullable=False, index=True))

_TYPES = {
    "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                     {"name": "chainId", "type": "uint256"}],
    "NodeRequest": [{"name": "method", "type": "string"}, {"name": "path", "type": "string"},
                    {"name": "bodyHash", "type": "bytes32"}, {"name": "timestamp", "type": "uint64"},
                    {"name": "nonce", "type": "bytes32"}, {"name": "audience", "type": "address"}],
}


class AuthError(ConsortiumError):
    """A request that cannot be attributed to a member: HTTP 401 with ``reason``."""

    reason = "unauthenticated"


def _typed(chain_id: int, method: str, path: str, body_hash: bytes, timestamp: int, nonce: bytes, audience: str):
    return encode_typed_data(full_message={
        "types": _TYPES, "primaryType": "NodeRequest",
        "domain": {"name": "ConsortiumNode", "version": "1", "chainId": chain_id},
        "message": {"method": method.upper(), "path": path, "bodyHash": body_hash, "timestamp": timestamp,
                    "nonce": nonce, "audience": Web3.to_checksum_address(audience)},
    })


def sign_request(account: LocalAccount, chain_id: int, audience: str, method: str, path: str, body: bytes,
                 *, timestamp: int | None = None, nonce: bytes | None = None) -> dict[str, str]:
    """Headers that authenticate one request from ``account`` to the node whose account is ``audience``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = os.urandom(32) if nonce is None else nonce
    message = _typed(chain_id, method, path, hashlib.sha256(body).digest(), timestamp, nonce, audience)
    signature = account.sign_message(message).signature
    return {HEADER_SIGNER: account.address, HEADER_TIMESTAMP: str(timestamp), HEADER_NONCE: nonce.hex(),
            HEADER_SIGNATURE: signature.hex()}


@dataclass(frozen=True)
class VerifiedRequest:
    signer: str
    timestamp: int
    nonce: bytes


class RequestVerifier:
    def __init__(self, engine: Engine, chain_id: int, audience: str, window_seconds: int = 120):
        self.engine = engine
        self.chain_id = chain_id
        self.audience = Web3.to_checksum_address(audience)
        self.window = window_seconds
        self._last_prune = 0.0
        migrate(engine, "auth", metadata, SCHEMA_VERSION)

    def verify(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> VerifiedRequest:
        get = {k.lower(): v for k, v in headers.items()}.get
        signer, ts, nonce_hex, sig = (get(HEADER_SIGNER), get(HEADER_TIMESTAMP), get(HEADER_NONCE), get(HEADER_SIGNATURE))
        if not (signer and ts and nonce_hex and sig):
            raise AuthError("request is not signed", reason="unsigned",
                            hint=f"send {HEADER_SIGNER}, {HEADER_TIMESTAMP}, {HEADER_NONCE} and {HEADER_SIGNATURE} headers")
        try:
            timestamp = int(ts)
            nonce = bytes.fromhex(nonce_hex.removeprefix("0x"))
            signature = bytes.fromhex(sig.removeprefix("0x"))
            claimed = Web3.to_checksum_address(signer)
        except ValueError:
            raise AuthError("malformed signature headers", reason="malformed_auth", hint="check the client") from None
        if len(nonce) != 32 or len(signature) != 65:
            raise AuthError("nonce must be 32 bytes and signature 65 bytes", reason="malformed_auth", hint="check the client")
        now = int(time.time())
        if abs(now - timestamp) > self.window:
            raise AuthError(f"request timestamp is {now - timestamp} s away from this node's clock",
                            reason="stale_timestamp", hint="sync the clock (NTP) and resend with a fresh signature")
        message = _typed(self.chain_id, method, path, hashlib.sha256(body).digest(), timestamp, nonce, self.audience)
        try:
            recovered = Account.recover_message(message, signature=signature)
        except Exception:
            raise AuthError("signature does not verify", reason="bad_signature", hint="sign with the member's account key") from None
        if recovered != claimed:
            raise AuthError("signature does not match the claimed signer (forged, or signed for another node or body)",
                            reason="bad_signature", hint="sign the exact request for this node with the member's key")
        self._remember(claimed, nonce, now)
        return VerifiedRequest(claimed, timestamp, nonce)

    def _remember(self, signer: str, nonce: bytes, now: int) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(seen_nonces.insert().values(signer=signer, nonce=nonce, seen_at=now))
                if now - self._last_prune > self.window:
                    # Nonces older than twice the window can never be accepted again anyway.
                    conn.execute(delete(seen_nonces).where(seen_nonces.c.seen_at < now - 2 * self.window))
                    self._last_prune = now
        except IntegrityError:
            raise AuthError("request replayed (nonce already used)", reason="replayed",
                            hint="sign every request with a fresh nonce") from None
