"""A requester's signed request, kept as the proof behind a denial (issue 11 item 4).

A denial on chain names a requester; without more, any owner could name anyone. So with each denial
the owner records, as its ``queryHash``, the EIP-712 digest of the request the requester signed
(node/access/auth.py), and keeps the request itself (method, path, body, timestamp, nonce, signature). The
regulator asks the owner for it and checks, with nothing but the chain id and the owner's address,
that the named requester signed a request to that owner whose digest is the one on chain.
"""
from __future__ import annotations

import base64
import hashlib
from contextvars import ContextVar
from dataclasses import dataclass

from node.access.auth import checksum, recover_signer, request_digest
from node.enums import ZERO32  # noqa: F401 (one home; access_log and denial proofs import it from here)


@dataclass(frozen=True)
class SignedRequest:
    """One request exactly as its signer signed it."""

    signer: str
    method: str
    path: str  # with the query string, as signed
    body: bytes
    timestamp: int
    nonce: bytes
    signature: bytes
    digest: bytes  # EIP-712 digest (node/auth.request_digest): the denial's queryHash on chain

    def document(self) -> dict:
        return {"signer": self.signer, "method": self.method, "path": self.path,
                "body_b64": base64.b64encode(self.body).decode(), "timestamp": self.timestamp,
                "nonce": "0x" + self.nonce.hex(), "signature": "0x" + self.signature.hex(), "digest": "0x" + self.digest.hex()}


class ProofError(ValueError):
    """Why a produced request does not prove a denial; ``status`` is the anomaly's reason."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


def verify_denial_request(document: dict, *, chain_id: int, owner: str, requester: str, query_hash: bytes) -> None:
    """Check that ``document`` proves a denial by ``owner`` of a request by ``requester``.

    The digest is recomputed from the request's own fields with the owner as audience (a request signed
    for another node does not prove this owner's denial); it must equal the on-chain ``query_hash``,
    and the signature must recover to the requester. Raises ProofError(status) otherwise.
    """
    try:
        body = base64.b64decode(document["body_b64"], validate=True)
        nonce = bytes.fromhex(str(document["nonce"]).removeprefix("0x"))
        signature = bytes.fromhex(str(document["signature"]).removeprefix("0x"))
        digest = request_digest(chain_id, str(document["method"]), str(document["path"]), hashlib.sha256(body).digest(),
                                int(document["timestamp"]), nonce, checksum(owner))
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ProofError("malformed_request", f"the produced request is malformed ({type(exc).__name__})") from None
    if digest != query_hash:
        raise ProofError("digest_mismatch", "the produced request does not hash to the denial's hash on chain "
                                            "(another request, or one signed for another node)")
    try:
        signer = recover_signer(digest, signature)
    except Exception:
        signer = None
    if signer != checksum(requester):
        raise ProofError("not_signed_by_requester", f"the produced request is signed by {signer}, not by the named "
                                                    f"requester {checksum(requester)}")


# The request being served, set by the authentication dependency: lets a service that only knows the
# caller's address (the statistics participant) log a denial with the proof of that very request.
_serving: ContextVar[SignedRequest | None] = ContextVar("consortium_signed_request", default=None)


def serving(request: SignedRequest) -> None:
    _serving.set(request)


def request_of(caller) -> SignedRequest | None:
    """The signed request behind ``caller`` (a Caller, or the address of the request being served)."""
    signed = getattr(caller, "request", None) or _serving.get()
    address = getattr(caller, "address", caller)
    if signed is None or signed.signer != checksum(address):
        return None
    return signed
