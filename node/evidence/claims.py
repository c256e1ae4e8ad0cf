"""Claim lifecycle on chain: record a step (with the express flag on assessment) and read a claim's history.

A claim on chain is (insurer, SHA-256 of the UTF-8 claim id): EvidenceRegistry keys it by the insurer's
address too (node/evidence/leaf.py, ``claim_key``), so the same claim id used by two insurers is two claims.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from web3 import Web3

from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger, read_member, read_members
from node.enums import ZERO32, ClaimStep
from node.evidence.errors import InvalidEvidenceInput
from node.evidence.leaf import claim_id_hash, claim_key, is_express_claim

FLAG_EXPRESS = 1


@dataclass(frozen=True)
class ClaimStepRecord:
    step: str
    actor: str
    actor_name: str
    block_number: int
    block_time: int
    tx_hash: str
    detail_hash: str
    express: bool


def parse_step(value: str) -> ClaimStep:
    key = value.strip().upper().replace("-", "_").replace(" ", "_")
    if key not in ClaimStep.__members__:
        names = ", ".join(s.name.lower().replace("_", "-") for s in ClaimStep)
        raise InvalidEvidenceInput(f"unknown claim step {value!r}", hint=f"use one of: {names}", reason="invalid_claim_step")
    return ClaimStep[key]


def record_claim_step(ledger: Ledger, claim_id: str, step: ClaimStep, *, detail: dict | None = None,
                      amount: float | None = None, express_threshold: float | None = None,
                      materials_complete: bool = False, liability_clear: bool = False) -> dict:
    """Record ``step``; with an assessment and an amount, the express flag follows :func:`is_express_claim`.

    The detail (amount, threshold, the two conditions, anything else) stays off chain; its SHA-256 goes on chain.
    """
    detail = dict(detail or {})
    flags = 0
    if step == ClaimStep.ASSESSED and amount is not None:
        if express_threshold is None:
            raise InvalidEvidenceInput("an assessment with an amount needs the express threshold",
                                       hint="pass --express-threshold", reason="invalid_amount")
        express = is_express_claim(amount, express_threshold, materials_complete=materials_complete,
                                   liability_clear=liability_clear)
        flags = FLAG_EXPRESS if express else 0
        detail.update(amount=amount, express_threshold=express_threshold, materials_complete=materials_complete,
                      liability_clear=liability_clear, express=express)
    detail_hash = hashlib.sha256(json.dumps(detail, sort_keys=True).encode()).digest() if detail else ZERO32
    receipt = ledger.record_claim_step(claim_id_hash(claim_id), step, detail_hash, flags)
    return {"claim_id": claim_id, "insurer": ledger.address, "claim_key": claim_key(ledger.address, claim_id).hex(),
            "step": step.name, "express": bool(flags & FLAG_EXPRESS),
            "block_number": receipt["blockNumber"], "tx_hash": "0x" + bytes(receipt["transactionHash"]).hex(),
            "detail_hash": detail_hash.hex()}


def resolve_insurer(gateway: ChainGateway, insurer: str) -> str:
    """A member's address from its address or its registered name."""
    if Web3.is_address(insurer):
        return Web3.to_checksum_address(insurer)
    for record in read_members(gateway):
        if record.name == insurer:
            return record.address
    raise InvalidEvidenceInput(f"no member named {insurer!r}", hint="pass the insurer's address or its name as "
                               "`consortium members` lists it", reason="unknown_insurer")


def claim_history(gateway: ChainGateway, claim_id: str, insurer: str | None = None,
                  from_block: int = 0) -> list[ClaimStepRecord]:
    """Insurer ``insurer``'s claim ``claim_id``: its ClaimStepRecorded events, oldest first, with block times and names.

    Without ``insurer`` the claim id must have been used by one insurer only; when several insurers
    recorded steps under the same id, the caller must say whose claim it means.
    """
    if insurer is not None:
        events = gateway.events("EvidenceRegistry", "ClaimStepRecorded", from_block=from_block,
                                filters={"claimKey": claim_key(resolve_insurer(gateway, insurer), claim_id)})
    else:
        events = gateway.events("EvidenceRegistry", "ClaimStepRecorded", from_block=from_block,
                                filters={"claimIdHash": claim_id_hash(claim_id)})
        insurers = sorted({Web3.to_checksum_address(e["args"]["actor"]) for e in events})
        if len(insurers) > 1:
            raise InvalidEvidenceInput(f"claim id {claim_id!r} is used by {len(insurers)} insurers: {', '.join(insurers)}",
                                       hint="pass --insurer NAME_OR_ADDRESS to say whose claim", reason="ambiguous_claim")
    names: dict[str, str] = {}
    times: dict[int, int] = {}
    out = []
    for e in events:
        actor = Web3.to_checksum_address(e["args"]["actor"])
        if actor not in names:
            names[actor] = read_member(gateway, actor).name or "(not a member)"
        block = e["blockNumber"]
        if block not in times:
            times[block] = gateway.block_time(block)
        out.append(ClaimStepRecord(ClaimStep(e["args"]["step"]).name, actor, names[actor], block, times[block],
                                   e["transactionHash"].hex(), bytes(e["args"]["detailHash"]).hex(),
                                   bool(e["args"]["flags"] & FLAG_EXPRESS)))
    return out
