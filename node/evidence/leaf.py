"""What one evidence leaf commits to, and the claim-id hash used on chain. Pure: no I/O.

A leaf binds a document to its claim and type, so a proof shows not only that the document was
submitted but for which claim and as what:

    leaf data  = SHA-256(document) || SHA-256(UTF-8 claim id) || one byte document type code
    leaf hash  = SHA-256(0x00 || leaf data)                        (RFC 6962 leaf, privacy/merkle.py)

On chain a claim belongs to its insurer: EvidenceRegistry keys it by
``claim_key = keccak256(abi.encode(insurer address, SHA-256(UTF-8 claim id)))`` (the id stays off chain),
so another member reporting the same claim id first only opens its own, separate claim.
"""
from __future__ import annotations

import hashlib
from enum import IntEnum

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from node.evidence.errors import InvalidEvidenceInput
from privacy.merkle import leaf_hash as _rfc6962_leaf_hash

MAX_CLAIM_ID_LENGTH = 128


class DocType(IntEnum):
    INVOICE = 1
    MEDICAL_RECORD = 2
    IDENTITY_DOCUMENT = 3
    LOSS_PHOTO = 4

    @classmethod
    def parse(cls, value: "str | int | DocType") -> "DocType":
        """Accept the enum, its code, or its name in any case with '-' or '_' ('medical-record')."""
        if isinstance(value, DocType):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        elif isinstance(value, str):
            key = value.strip().upper().replace("-", "_").replace(" ", "_")
            if key in cls.__members__:
                return cls[key]
        names = ", ".join(m.name.lower().replace("_", "-") for m in cls)
        raise InvalidEvidenceInput(f"unknown document type {value!r}", hint=f"use one of: {names}",
                                   reason="invalid_doc_type")

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


def check_claim_id(claim_id: object) -> str:
    if not isinstance(claim_id, str) or not claim_id.strip():
        raise InvalidEvidenceInput("claim id must be a non-empty string", hint="pass the claim's id, e.g. CLM-2024-0001",
                                   reason="invalid_claim_id")
    if len(claim_id) > MAX_CLAIM_ID_LENGTH or not claim_id.isprintable():
        raise InvalidEvidenceInput(f"claim id must be at most {MAX_CLAIM_ID_LENGTH} printable characters",
                                   hint="shorten the claim id", reason="invalid_claim_id")
    return claim_id


def parse_sha256(value: object, what: str = "document SHA-256") -> bytes:
    """32 bytes from bytes or 64 hex digits (an optional 0x prefix is accepted)."""
    if isinstance(value, (bytes, bytearray)) and len(value) == 32:
        return bytes(value)
    if isinstance(value, str):
        text = value[2:] if value.startswith(("0x", "0X")) else value
        if len(text) == 64:
            try:
                return bytes.fromhex(text)
            except ValueError:
                pass
    raise InvalidEvidenceInput(f"{what} must be 64 hex digits (32 bytes), got {str(value)[:80]!r}",
                               hint="send hashlib.sha256(document).hexdigest()", reason="invalid_hash")


def claim_id_hash(claim_id: str) -> bytes:
    """The claim's name on chain: SHA-256 of the UTF-8 claim id."""
    return hashlib.sha256(check_claim_id(claim_id).encode()).digest()


def claim_key(insurer: str, claim_id: str) -> bytes:
    """The claim's key on chain: keccak256(abi.encode(insurer, claim_id_hash)), as EvidenceRegistry.claimKey."""
    return keccak(abi_encode(["address", "bytes32"], [to_checksum_address(insurer), claim_id_hash(claim_id)]))


def evidence_leaf_hash(doc_sha256: bytes, claim_id: str, doc_type: DocType) -> bytes:
    """RFC 6962 leaf hash of (document hash, claim id hash, document type)."""
    return _rfc6962_leaf_hash(doc_sha256 + claim_id_hash(claim_id) + bytes([int(doc_type)]))


def is_express_claim(amount: float, threshold: float, *, materials_complete: bool, liability_clear: bool) -> bool:
    """Express claim: amount strictly under the configured threshold, materials complete, liability clear."""
    if amount < 0 or threshold < 0:
        raise InvalidEvidenceInput("claim amount and express threshold must not be negative", reason="invalid_amount")
    return amount < threshold and materials_complete and liability_clear
