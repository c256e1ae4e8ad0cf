"""Consents bound to the grant they authorize.

A consent names exactly what it consents to: owner, grantee, dataset, purpose, scope (hash) and expiry,
signed as EIP-712 typed data whose domain carries the chain id and the DataUseAuthorization contract's
address. DataUseAuthorization.grant recomputes the digest, compares every field with the grant's,
checks the signature and the expiry, and marks the digest used: one consent, one grant, on this chain
and this contract only. The digest becomes the grant's ``consentRef``.

Two forms, one typed structure:
- a data subject's own consent: the subject signs, ``subjects_root`` is zero;
- a consent batch (many subjects who consented in a platform's app): the member that collected them
  signs a consent whose ``subjects_root`` is the RFC 6962 Merkle root of the consent records' hashes.
  The batch is bound to the same fields and is single-use like a subject's consent; one subject's
  record can later be proven in the batch. The chain accepts a batch only from a member in good
  standing, so the attestation is accountable to that member.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace

from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_account.signers.local import LocalAccount
from web3 import Web3

from node.errors import ConsortiumError
from privacy.merkle import leaf_hash, root_from_leaf_hashes

ZERO32 = "0x" + "00" * 32
DOMAIN_NAME, DOMAIN_VERSION = "ConsortiumConsent", "2"
_TYPES = {
    "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                     {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
    "DataUseConsent": [{"name": "signer", "type": "address"}, {"name": "owner", "type": "address"},
                       {"name": "grantee", "type": "address"}, {"name": "datasetId", "type": "bytes32"},
                       {"name": "purpose", "type": "uint8"}, {"name": "scopeHash", "type": "bytes32"},
                       {"name": "expiresAt", "type": "uint64"}, {"name": "subjectsRoot", "type": "bytes32"},
                       {"name": "nonce", "type": "bytes32"}],
}
# ConsentMismatch(field) of the contract, by enum index.
CONSENT_FIELDS = ("owner", "grantee", "dataset", "purpose", "scope", "expiry")


class ConsentError(ConsortiumError):
    reason = "consent"


def _b32(value: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except (AttributeError, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConsentError(f"consent field {what} must be 32 bytes of hex", reason="bad_consent", hint="check the consent file")
    return raw


@dataclass(frozen=True)
class Consent:
    signer: str  # the subject, or the member attesting a batch
    owner: str
    grantee: str
    dataset_id: str  # 0x hex
    purpose: int
    scope_hash: str  # 0x hex: SHA-256 of the scope document, as in the grant
    expires_at: int
    subjects_root: str = ZERO32  # 0x hex; zero for one subject's own consent
    nonce: str = ZERO32  # 0x hex

    def message(self) -> dict:
        return {"signer": Web3.to_checksum_address(self.signer), "owner": Web3.to_checksum_address(self.owner),
                "grantee": Web3.to_checksum_address(self.grantee), "datasetId": _b32(self.dataset_id, "dataset_id"),
                "purpose": int(self.purpose), "scopeHash": _b32(self.scope_hash, "scope_hash"),
                "expiresAt": int(self.expires_at), "subjectsRoot": _b32(self.subjects_root, "subjects_root"),
                "nonce": _b32(self.nonce, "nonce")}

    def typed(self, chain_id: int, contract: str):
        return encode_typed_data(full_message={
            "types": _TYPES, "primaryType": "DataUseConsent",
            "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
                       "verifyingContract": Web3.to_checksum_address(contract)},
            "message": self.message()})

    def digest(self, chain_id: int, contract: str) -> bytes:
        """The EIP-712 digest: what the signer signs, and the consentRef of the grant it authorizes."""
        return bytes(_hash_eip191_message(self.typed(chain_id, contract)))

    def as_tuple(self) -> tuple:
        """The contract's ``Consent`` struct, in ABI order."""
        m = self.message()
        return (m["signer"], m["owner"], m["grantee"], m["datasetId"], m["purpose"], m["scopeHash"], m["expiresAt"],
                m["subjectsRoot"], m["nonce"])


@dataclass(frozen=True)
class SignedConsent:
    consent: Consent
    signature: bytes
    chain_id: int
    contract: str

    def document(self) -> dict:
        """The JSON document a signer hands to the data owner (``consent sign`` writes it)."""
        return {"consent": asdict(self.consent), "signature": "0x" + self.signature.hex(), "chain_id": self.chain_id,
                "verifying_contract": Web3.to_checksum_address(self.contract)}


def scope_hash(scope: str) -> str:
    """SHA-256 of a scope document, as the grant puts it on chain."""
    return "0x" + hashlib.sha256(scope.encode()).hexdigest()


def sign_consent(signer: LocalAccount, consent: Consent, chain_id: int, contract: str) -> SignedConsent:
    """``signer`` signs ``consent`` for the DataUseAuthorization contract ``contract`` on chain ``chain_id``."""
    if Web3.to_checksum_address(consent.signer) != signer.address:
        raise ConsentError("the consent names another signer than the key signing it", reason="bad_consent",
                           hint="sign with the subject's (or the attesting member's) own key")
    if consent.nonce == ZERO32:
        consent = replace(consent, nonce="0x" + os.urandom(32).hex())
    signature = signer.sign_message(consent.typed(chain_id, contract)).signature
    return SignedConsent(consent, bytes(signature), chain_id, contract)


def parse_consent(document: dict) -> SignedConsent:
    """A signed consent document, its signature checked offline. Raises ConsentError when invalid.

    Offline checking catches a forged or altered document early; whether it fits a grant (fields,
    expiry, single use) is decided by the contract at grant time, the one place it cannot be bypassed.
    """
    try:
        signed = SignedConsent(Consent(**document["consent"]), bytes.fromhex(str(document["signature"]).removeprefix("0x")),
                               int(document["chain_id"]), Web3.to_checksum_address(document["verifying_contract"]))
        signer = Account.recover_message(signed.consent.typed(signed.chain_id, signed.contract), signature=signed.signature)
    except ConsentError:
        raise
    except Exception as exc:
        raise ConsentError(f"malformed consent document ({type(exc).__name__})", reason="bad_consent",
                           hint="pass the JSON written by `consent sign`") from None
    if signer != Web3.to_checksum_address(signed.consent.signer):
        raise ConsentError("consent signature is not the named signer's", reason="bad_consent_signature",
                           hint="the subject (or the attesting member) must sign the consent itself")
    return signed


def verify_consent(document: dict) -> bytes:
    """Check a signed consent document offline; returns its digest (the grant's consentRef)."""
    signed = parse_consent(document)
    return signed.consent.digest(signed.chain_id, signed.contract)


def record_hash(record: dict) -> bytes:
    """SHA-256 of a consent record's canonical JSON: the leaf data of a consent batch."""
    return hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).digest()


def batch_consent_root(records: list[dict]) -> bytes:
    """``subjects_root`` of a consent batch: the RFC 6962 root of its records' canonical hashes."""
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise ConsentError("a consent batch is a non-empty list of consent records (JSON objects)", reason="bad_consent",
                           hint="give at least one consent record")
    return root_from_leaf_hashes([leaf_hash(record_hash(r)) for r in records])


def attest_batch(member: LocalAccount, records: list[dict], *, owner: str, grantee: str, dataset_id: bytes, purpose: int,
                 scope_hash_hex: str, expires_at: int, chain_id: int, contract: str) -> SignedConsent:
    """The collecting member's signed consent for a batch of subjects' records, bound to one grant's fields."""
    consent = Consent(member.address, owner, grantee, "0x" + dataset_id.hex(), int(purpose), scope_hash_hex, int(expires_at),
                      "0x" + batch_consent_root(records).hex())
    return sign_consent(member, consent, chain_id, contract)
