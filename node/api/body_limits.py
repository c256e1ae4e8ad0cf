"""How large a request body each route takes: declared here once, for the middleware and the routes.

The outermost middleware (node/api/app.py ``BodyLimit``) refuses any body over its route's limit before
routing reads a byte; routes that stream a body (evidence documents, proof checks, hash batches) check
the same figures as they read, so the evidence API refuses with its own reasons when mounted alone.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from node.runtime.settings import NodeSettings

_MIB = 1024 * 1024
BYTES_PER_HASH_ITEM = 256  # generous JSON size of one {sha256, claim_id, doc_type} item


def verify_body_limit(max_document_bytes: int) -> int:
    """/evidence/verify: the document in base64 (4/3 of its size) plus room for the proof file."""
    return max_document_bytes * 4 // 3 + 65536


def hashes_body_limit(max_hashes_per_request: int) -> int:
    """/evidence/hashes: the JSON of the largest batch of hashes one request may carry."""
    return max_hashes_per_request * BYTES_PER_HASH_ITEM


def route_body_limits(settings: "NodeSettings") -> dict[str, int]:
    """Path -> the largest body it accepts; any other path takes ``settings.max_body_bytes``."""
    documents = settings.evidence_max_document_bytes
    return {
        "/evidence/documents": documents,
        "/evidence/verify": verify_body_limit(documents),
        # the auditor's evidence page uploads a document and its proof file (multipart)
        "/web/evidence": documents + _MIB,
        "/evidence/hashes": max(settings.max_body_bytes, 64 * _MIB),
        # vertical statistics: a million blinded ids, label batches of 5000 ciphertexts
        "/stats/vertical/double": max(settings.max_body_bytes, 256 * _MIB),
        "/stats/vertical/labels": max(settings.max_body_bytes, 64 * _MIB),
    }
