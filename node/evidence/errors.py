"""Evidence errors: one line each, with a machine-readable ``reason`` and the ``http_status`` a route answers with."""
from __future__ import annotations

from node.errors import ConsortiumError


class EvidenceError(ConsortiumError):
    reason = "evidence"


class InvalidEvidenceInput(EvidenceError):
    """A hash, claim id or document type that the node refuses at the boundary."""

    reason, http_status = "invalid_input", 422


class DocumentTooLarge(EvidenceError):
    reason, http_status = "document_too_large", 413


class RequestTooLarge(EvidenceError):
    reason, http_status = "request_too_large", 413


class MalformedJson(EvidenceError):
    reason = "malformed_json"


class UnknownClaim(EvidenceError):
    reason, http_status = "unknown_claim", 404


class EvidenceUnavailable(EvidenceError):
    reason, http_status = "evidence_unavailable", 503


class EvidenceVerificationError(EvidenceError):
    """The auditor's check failed; ``reason`` says exactly which check (see verify.py)."""

    reason = "verification_failed"
