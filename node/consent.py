"""Consent references for grants.

Two kinds, both ending up as the 32-byte ``consentRef`` of a grant:
- a data subject's own consent, signed as EIP-712 typed data with the subject's key: the reference is
  the EIP-712 digest, so anyone holding the consent and its signature can check it against the chain;
- a platform's consent batch (many subjects who consented in its app): the reference is the RFC 6962
  Merkle root of the consent records' hashes, so one subject's consent can later be proven in the batch.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_account.signers.local import LocalAccount
from web3 import Web3

from node.errors import ConsortiumError
from privacy.merkle import leaf_hash, root_from_leaf_hashes

_TYPES = {
    "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                     {"name": "chainId", "type": "uint256"}],
    "DataUseConsent": [{"name": "subject", "type": "address"}, {"name": "owner", "type": "address"},
                       {"name": "grantee", "type": "address"}, {"name": "datasetId", "type": "bytes32"},
                       {"name": "purpose", "type": "uint8"}, {"name": "expiresAt", "type": "uint64"},
                       {"name": "nonce", "type": "bytes32"}],
}


class ConsentError(ConsortiumError):
    reason = "consent"


@dataclass(frozen=True)
class Consent:
    subject: str
    owner: str
    grantee: str
    dataset_id: str  # 0x hex
    purpose: int
    expires_at: int
    nonce: str  # 0x hex

    def typed(self, chain_id: int):
        return encode_typed_data(full_message={
            "types": _TYPES, "primaryType": "DataUseConsent",
            "domain": {"name": "ConsortiumConsent", "version": "1", "chainId": chain_id},
            "message": {"subject": Web3.to_checksum_address(self.subject), "owner": Web3.to_checksum_address(self.owner),
                        "grantee": Web3.to_checksum_address(self.grantee), "datasetId": bytes.fromhex(self.dataset_id[2:]),
                        "purpose": self.purpose, "expiresAt": self.expires_at, "nonce": bytes.fromhex(self.nonce[2:])}})

    def reference(self, chain_id: int) -> bytes:
        """The grant's consentRef for this consent: its EIP-712 digest."""
        return bytes(_hash_eip191_message(self.typed(chain_id)))


def sign_consent(subject: LocalAccount, consent: Consent, chain_id: int) -> dict:
    """The signed consent document a subject hands to the data owner."""
    if Web3.to_checksum_address(consent.subject) != subject.address:
        raise ConsentError("the consent names another subject than the signer", hint="sign with the subject's own key")
    signature = subject.sign_message(consent.typed(chain_id)).signature
    return {"consent": asdict(consent), "signature": "0x" + bytes(signature).hex(), "chain_id": chain_id}


def verify_consent(document: dict) -> bytes:
    """Check a signed consent document; returns its consentRef. Raises ConsentError when invalid."""
    try:
        consent = Consent(**document["consent"])
        chain_id = int(document["chain_id"])
        signature = bytes.fromhex(document["signature"].removeprefix("0x"))
        signer = Account.recover_message(consent.typed(chain_id), signature=signature)
    except ConsentError:
        raise
    except Exception as exc:
        raise ConsentError(f"malformed consent document ({type(exc).__name__})", hint="check the consent file") from None
    if signer != Web3.to_checksum_address(consent.subject):
        raise ConsentError("consent signature is not the subject's", hint="the subject must sign the consent itself")
    return consent.reference(chain_id)


def batch_consent_ref(records: list[dict]) -> bytes:
    """consentRef for a platform's batch of consent records: the RFC 6962 root of their canonical hashes."""
    if not records:
        raise ConsentError("empty consent batch", hint="a batch needs at least one consent record")
    leaves = [leaf_hash(hashlib.sha256(json.dumps(r, sort_keys=True, separators=(",", ":")).encode()).digest()) for r in records]
    return root_from_leaf_hashes(leaves)
