"""Auditor verification: a document and its proof file against the chain, and nothing else.

The trusted values (root, tree size, submitter, block, time) come from EvidenceRegistry; the proof
file only says where to look (batch id, root and submitter: each member anchors in its own namespace)
and which path to hash. Each failure has a precise ``reason``:

==================  ================================================================================
malformed_proof     the proof file is not a proof (bad JSON, missing keys, bad hex)
tampered_document   the document's SHA-256, or the leaf it gives with the claim id and type, is not the proof's
                    (the document was changed since it was submitted)
unknown_root        the proof's root is not anchored by the named submitter on this deployment's EvidenceRegistry
wrong_proof         size, index, number of nodes, batch id, or the audit path does not lead to the anchored root;
                    or the proof is another document's: it names a document (``document``, the file name at
                    upload) other than the one given, so a mix-up of files is not reported as tampering
non_member          the root was anchored by an account that is not a consortium member
==================  ================================================================================
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from web3 import Web3

from node.chain.deployment import Status
from node.chain.gateway import ChainGateway
from node.chain.ledger import find_batch, read_member
from node.evidence.errors import EvidenceVerificationError, InvalidEvidenceInput
from node.evidence.leaf import DocType, check_claim_id, evidence_leaf_hash, parse_sha256
from node.evidence.service import PROOF_FORMAT
from privacy.merkle import (
    BadSizesError,
    IndexOutOfRangeError,
    MalformedError,
    ProofError,
    ProofLengthError,
    RootMismatchError,
    proof_from_json,
    verify_inclusion,
)


class EvidenceChain(Protocol):
    """What verification reads from the chain (a fake one serves the unit tests)."""

    def batch_by_root(self, submitter: str, root: bytes) -> dict | None: ...
    def batch_by_id(self, submitter: str, batch_id: bytes) -> dict | None: ...
    def member(self, address: str) -> tuple[str, Status]: ...


class RegistryEvidenceChain:
    """EvidenceChain over a gateway attached to a deployment (read-only: no account needed)."""

    def __init__(self, gateway: ChainGateway):
        self.gateway = gateway

    def batch_by_root(self, submitter: str, root: bytes) -> dict | None:
        return find_batch(self.gateway, submitter, root=root)

    def batch_by_id(self, submitter: str, batch_id: bytes) -> dict | None:
        return find_batch(self.gateway, submitter, batch_id=batch_id)

    def member(self, address: str) -> tuple[str, Status]:
        record = read_member(self.gateway, address)
        return record.name, record.status


@dataclass(frozen=True)
class EvidenceVerdict:
    claim_id: str
    doc_type: str
    doc_sha256: str
    leaf_index: int
    tree_size: int
    root: str
    batch_id: str
    block_number: int
    block_time: int
    submitter: str
    submitter_name: str
    submitter_status: str

    def to_json(self) -> dict:
        return {"valid": True, **asdict(self)}


def _fail(reason: str, message: str, hint: str | None = None) -> EvidenceVerificationError:
    return EvidenceVerificationError(message, hint=hint, reason=reason)


def load_proof_file(path: str | Path) -> dict:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise _fail("malformed_proof", f"cannot read proof file {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _fail("malformed_proof", f"proof file {path} is not JSON: {exc}") from None


def verify_evidence(document_sha256: bytes, proof_file: Any, chain: EvidenceChain,
                    document_name: str | None = None) -> EvidenceVerdict:
    """Check that the document with this SHA-256 is the leaf the proof file names, in a batch anchored by a member.

    ``document_name`` (the file's name) only tells the two failures of a different hash apart: a proof that
    names another document is ``wrong_proof``; one for a document of this name is ``tampered_document``.

    Raises :class:`EvidenceVerificationError` whose ``reason`` is one of the module's reasons.
    """
    # 1. the proof file itself
    if not isinstance(proof_file, dict):
        raise _fail("malformed_proof", f"proof file must be a JSON object, not {type(proof_file).__name__}")
    if proof_file.get("format") != PROOF_FORMAT:
        raise _fail("malformed_proof", f"proof file format is {proof_file.get('format')!r}, expected {PROOF_FORMAT!r}",
                    hint="export it with `consortium evidence proof CLAIM`")
    if "proof" not in proof_file:
        raise _fail("malformed_proof", f"proof file has no inclusion proof (batch state {proof_file.get('state')!r})",
                    hint="export the proof again once the batch is anchored")
    try:
        claim_id = check_claim_id(proof_file.get("claim_id"))
        doc_type = DocType.parse(proof_file.get("doc_type"))
        claimed_sha = parse_sha256(proof_file.get("doc_sha256"), "doc_sha256")
        batch_id = parse_sha256(proof_file.get("batch_id"), "batch_id")
        proof = proof_from_json(proof_file["proof"])
        anchor = proof_file.get("anchor")
        submitter = anchor.get("submitter") if isinstance(anchor, dict) else None
        if not (isinstance(submitter, str) and Web3.is_address(submitter)):
            raise MalformedError("anchor.submitter must be the anchoring member's address")
    except (InvalidEvidenceInput, MalformedError) as exc:
        raise _fail("malformed_proof", f"proof file is malformed: {exc}") from None

    # 2. the document against the proof's leaf
    proof_for = proof_file.get("document")
    if document_sha256 != claimed_sha and isinstance(proof_for, str) and document_name \
            and Path(proof_for).name != Path(document_name).name:
        raise _fail("wrong_proof", f"the proof is for document {Path(proof_for).name!r} (SHA-256 {claimed_sha.hex()}), "
                    f"not for {Path(document_name).name!r}", hint=f"use the proof file of {Path(document_name).name}")
    if document_sha256 != claimed_sha:
        raise _fail("tampered_document", f"the document's SHA-256 {document_sha256.hex()} is not the submitted "
                    f"document's {claimed_sha.hex()}")
    leaf = evidence_leaf_hash(document_sha256, claim_id, doc_type)
    if leaf != proof.leaf_hash:
        raise _fail("tampered_document", f"document, claim {claim_id!r} and type {doc_type.label} give leaf {leaf.hex()}, "
                    f"the proof is for leaf {proof.leaf_hash.hex()}")

    # 3. the anchored batch: root, size, block and time come from the chain, never from the proof; the
    #    proof's submitter only says whose namespace to read, and the chain confirms that it anchored the root
    anchored = chain.batch_by_root(submitter, proof.root)
    if anchored is None:
        by_id = chain.batch_by_id(submitter, batch_id)
        extra = f"; batch {batch_id.hex()} is anchored with root {by_id['root'].hex()}" if by_id else ""
        raise _fail("unknown_root", f"root {proof.root.hex()} is not anchored by {submitter} on this EvidenceRegistry{extra}",
                    hint="check --rpc and --deployment, or ask the member for a fresh proof")
    if anchored["batch_id"] != batch_id:
        raise _fail("wrong_proof", f"root {proof.root.hex()} was anchored as batch {anchored['batch_id'].hex()}, "
                    f"the proof names batch {batch_id.hex()}")
    if proof.tree_size != anchored["size"]:
        raise _fail("wrong_proof", f"proof is for a tree of {proof.tree_size} leaves, the anchored batch has {anchored['size']}")
    try:
        verify_inclusion(proof.leaf_hash, proof.leaf_index, anchored["size"], proof.audit_path, anchored["root"])
    except IndexOutOfRangeError as exc:
        raise _fail("wrong_proof", f"wrong leaf index: {exc}") from None
    except ProofLengthError as exc:
        raise _fail("wrong_proof", f"wrong number of proof nodes: {exc}") from None
    except RootMismatchError as exc:
        raise _fail("wrong_proof", f"the audit path does not lead to the anchored root: {exc}") from None
    except (BadSizesError, ProofError) as exc:
        raise _fail("wrong_proof", str(exc)) from None

    # 4. who anchored it
    name, status = chain.member(anchored["submitter"])
    if status == Status.NONE:
        raise _fail("non_member", f"root {proof.root.hex()} was anchored by {anchored['submitter']}, "
                    "which is not a consortium member")
    return EvidenceVerdict(claim_id, doc_type.label, document_sha256.hex(), proof.leaf_index, anchored["size"],
                           anchored["root"].hex(), batch_id.hex(), anchored["block_number"], anchored["timestamp"],
                           Web3.to_checksum_address(anchored["submitter"]), name, status.name)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> bytes:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    except OSError as exc:
        raise _fail("unreadable_document", f"cannot read document {path}: {exc.strerror}") from None
    return h.digest()
