"""Evidence errors: one line each, with a machine-readable ``reason`` (also the HTTP error reason)."""
from __future__ import annotations

from node.errors import ConsortiumError


class EvidenceError(ConsortiumError):
    reason = "evidence"


class InvalidEvidenceInput(EvidenceError):
    """A hash, claim id or document type that the node refuses at the boundary."""

    reason = "invalid_input"


class DocumentTooLarge(EvidenceError):
    reason = "document_too_large"


class UnknownClaim(EvidenceError):
    reason = "unknown_claim"


class EvidenceVerificationError(EvidenceError):
    """The auditor's check failed; ``reason`` says exactly which check (see verify.py)."""

    reason = "verification_failed"
