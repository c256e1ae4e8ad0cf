"""HTTP endpoints for evidence: intake, receipts, proofs, and verification for the auditor's page.

The node mounts ``router`` and puts an :class:`EvidenceService` in ``app.state.evidence``. Each route declares
who may call it: verification any member in good standing (typically an auditor), everything else this member's
own operator. Handlers stay thin; refusals are the evidence errors, which carry their reason and HTTP status
(node/api/deps.py maps them): ``{"detail": {"reason": ..., "message": ...}}``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from node.api.body_limits import hashes_body_limit, verify_body_limit
from node.api.deps import Member, Operator
from node.errors import ConsortiumError
from node.evidence.errors import (
    DocumentTooLarge,
    EvidenceUnavailable,
    EvidenceVerificationError,
    InvalidEvidenceInput,
    MalformedJson,
    RequestTooLarge,
)
from node.evidence.service import EvidenceService
from node.evidence.verify import RegistryEvidenceChain, verify_evidence

router = APIRouter(prefix="/evidence", tags=["evidence"])

# Receipts one by one only up to this many items; beyond, the answer is compact spans.
_FULL_RECEIPTS_UP_TO = 1000


def _service(request: Request) -> EvidenceService:
    service = getattr(request.app.state, "evidence", None)
    if service is None:
        raise EvidenceUnavailable("evidence service is not running")
    return service


def _bad(reason: str, message: str) -> InvalidEvidenceInput:
    return InvalidEvidenceInput(message, reason=reason)


async def _json_body(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"request body of {declared} bytes exceeds {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestTooLarge(f"request body exceeds {limit} bytes")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJson(f"request body is not JSON: {exc}") from None


def servable_claim_id(claim_id: Any) -> str:
    """A claim id whose receipts and proofs can be fetched back by URL (``/evidence/proofs/{claim_id}``).

    A ``/`` (even as %2F) splits the path and ``.`` or ``..`` are removed by URL normalisation, so such an
    id would be accepted and then never served: refused at intake instead.
    """
    from node.evidence.leaf import check_claim_id

    check_claim_id(claim_id)
    if "/" in claim_id or "\\" in claim_id or claim_id in (".", ".."):
        raise InvalidEvidenceInput(f"claim id {claim_id[:80]!r} cannot be used in a URL path",
                                   hint="use a claim id without '/' or '\\' that is not '.' or '..'",
                                   reason="invalid_claim_id")
    return claim_id


def _item(obj: Any, n: int) -> tuple:
    if isinstance(obj, list) and len(obj) == 3:
        item = tuple(obj)
    elif isinstance(obj, dict) and {"sha256", "claim_id", "doc_type"} <= set(obj):
        item = obj["sha256"], obj["claim_id"], obj["doc_type"]
    else:
        item = None
    if item is not None:
        if not isinstance(item[1], str):
            return item  # the service refuses it as invalid_input, with the item's other fields
        try:
            servable_claim_id(item[1])
        except ConsortiumError as exc:
            raise _bad(exc.reason, f"item {n}: {exc.one_line()}") from None
        return item
    raise _bad("invalid_input", f"item {n} must be {{sha256, claim_id, doc_type}} or [sha256, claim_id, doc_type]")


@router.post("/hashes")
async def submit_hashes(request: Request, _: Operator) -> dict:
    """One hash ``{sha256, claim_id, doc_type}`` -> a receipt; or ``{"items": [...]}`` -> receipts or spans."""
    service = _service(request)
    body = await _json_body(request, hashes_body_limit(service.settings.max_hashes_per_request))
    single = isinstance(body, dict) and "items" not in body
    raw_items = [body] if single else (body.get("items") if isinstance(body, dict) else None)
    if not isinstance(raw_items, list):
        raise _bad("invalid_input", "send {sha256, claim_id, doc_type} or {\"items\": [...]}")
    items = [_item(x, n) for n, x in enumerate(raw_items)]
    if single:
        return (await run_in_threadpool(service.accept_many, items))[0].to_json()
    if len(items) <= _FULL_RECEIPTS_UP_TO:
        receipts = await run_in_threadpool(service.accept_many, items)
        return {"accepted": len(receipts), "receipts": [r.to_json() for r in receipts]}
    return await run_in_threadpool(service.accept_bulk, items)


@router.post("/documents")
async def submit_document(request: Request, claim_id: str, doc_type: str, _: Operator) -> dict:
    """The document as the raw request body (streamed and hashed as it arrives); size-limited."""
    service = _service(request)
    limit = service.settings.max_document_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise DocumentTooLarge(f"document of {declared} bytes exceeds {limit} bytes",
                               hint="send its SHA-256 to /evidence/hashes instead")
    servable_claim_id(claim_id)
    sink = service.document_sink()
    try:
        async for chunk in request.stream():
            sink.write(chunk)
        return (await run_in_threadpool(sink.finish, claim_id, doc_type)).to_json()
    finally:
        sink.discard()


@router.get("/receipts/{claim_id}")
async def claim_receipts(claim_id: str, request: Request, _: Operator) -> dict:
    return {"claim_id": claim_id, "receipts": await run_in_threadpool(_service(request).receipts, claim_id)}


@router.get("/proofs/{claim_id}")
async def claim_proofs(claim_id: str, request: Request, _: Operator) -> dict:
    return {"claim_id": claim_id, "proofs": await run_in_threadpool(_service(request).proofs, claim_id)}


@router.post("/verify")
async def verify(request: Request, _: Member) -> dict:
    """``{"proof": <proof file>, "document_base64" | "document_sha256"}`` -> verdict, from the chain alone.

    A document that fails verification is a normal answer: ``{"valid": false, "reason", "message"}``.
    """
    service = _service(request)
    body = await _json_body(request, verify_body_limit(service.settings.max_document_bytes))
    if not isinstance(body, dict) or "proof" not in body:
        raise _bad("invalid_input", "send {\"proof\": {...}, \"document_base64\": ...} or document_sha256")
    try:
        if "document_base64" in body:
            digest = hashlib.sha256(base64.b64decode(body["document_base64"], validate=True)).digest()
        elif "document_sha256" in body:
            from node.evidence.leaf import parse_sha256

            digest = parse_sha256(body["document_sha256"])
        else:
            raise _bad("invalid_input", "give document_base64 or document_sha256")
    except (binascii.Error, TypeError, ValueError):
        raise _bad("invalid_input", "document_base64 is not base64") from None
    chain = RegistryEvidenceChain(service.ledger.gateway)
    try:
        verdict = await run_in_threadpool(verify_evidence, digest, body["proof"], chain)
    except EvidenceVerificationError as exc:
        return {"valid": False, "reason": exc.reason, "message": exc.one_line()}
    return verdict.to_json()


@router.get("/status")
async def status(request: Request, _: Operator) -> dict:
    return await run_in_threadpool(_service(request).status)


# ---------------------------------------------------------------------------------- claim lifecycle


class ClaimStepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: str = Field(max_length=32, description="reported, materials-complete, assessed, approved, rejected or paid")
    detail: dict[str, Any] = Field(default_factory=dict, description="kept off chain; its SHA-256 goes on chain")
    amount: float | None = Field(default=None, ge=0)
    express_threshold: float | None = Field(default=None, ge=0)
    materials_complete: bool = False
    liability_clear: bool = False


@router.post("/claims/{claim_id}/steps")
async def record_step(claim_id: str, body: ClaimStepRequest, request: Request, _: Operator) -> dict:
    """Record the claim's next lifecycle step on chain, acting as this member (express flag with the assessment)."""
    from node.evidence.claims import parse_step, record_claim_step
    service = _service(request)
    servable_claim_id(claim_id)
    step = parse_step(body.step)
    return await run_in_threadpool(record_claim_step, service.ledger, claim_id, step, detail=body.detail,
                                   amount=body.amount, express_threshold=body.express_threshold,
                                   materials_complete=body.materials_complete, liability_clear=body.liability_clear)


@router.get("/claims/{claim_id}/history")
async def history(claim_id: str, request: Request, _: Operator) -> dict:
    """The claim's steps as the chain recorded them: block, time, acting member, express flag."""
    from dataclasses import asdict

    from node.evidence.claims import claim_history

    service = _service(request)
    # this member's own claim: on chain a claim is (insurer, claim id)
    records = await run_in_threadpool(claim_history, service.ledger.gateway, claim_id, service.ledger.address)
    return {"claim_id": claim_id, "insurer": service.ledger.address, "steps": [asdict(r) for r in records]}
