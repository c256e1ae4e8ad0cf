"""Mutual aid: apportion one approved claim's payout across participants, write what each party receives, verify.

The organising member reads its participant list (``participant_id`` and, for pro rata, ``weight``), splits
the payout exactly (largest remainder), builds the share sum tree and anchors ``(root, total, count, rule,
SHA-256 of the share list)`` on MutualAid. It then writes three files into one folder:

* ``shares.csv``       the published share list: ``index,participant_ref,share`` (references are salted
                       hashes of the ids, so the list shows amounts, not people); anyone checks that it sums
                       to the anchored payout and rebuilds the anchored root (:func:`check_published_shares`)
* ``proofs.jsonl``     one line per participant, for the organiser to hand to that participant only: its id,
                       the salt, and its share proof
* ``apportionment.json`` the summary (claim key, root, total, count, rule)

A participant verifies its line with :func:`verify_participant` against what the chain holds, never against
the organiser's files: its reference is recomputed from its own id, so someone else's line does not verify.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from node.errors import ConsortiumError
from privacy.apportion import (
    ApportionmentError,
    ShareProof,
    ShareTree,
    apportion,
    check_share_list,
    participant_ref,
)
from privacy.merkle import ProofError

RULES = {"equal": 1, "pro_rata": 2}
MAX_PARTICIPANT_ID = 128


class MutualAidError(ConsortiumError):
    reason = "mutual_aid"


class ShareVerificationError(ConsortiumError):
    """A participant's share or the published list does not match the chain; ``reason`` says how."""

    reason = "share_invalid"


@dataclass
class Participant:
    participant_id: str
    weight: int = 1


@dataclass
class Apportionment:
    rule: str
    salt: bytes
    participants: list[Participant]
    refs: list[bytes]
    shares: list[int]
    tree: ShareTree

    @property
    def payout(self) -> int:
        return self.tree.total

    def share_list(self) -> bytes:
        """The published share list (CSV bytes); its SHA-256 is anchored with the root."""
        buf = io.StringIO()
        buf.write("index,participant_ref,share\n")
        for i, (ref, share) in enumerate(zip(self.refs, self.shares)):
            buf.write(f"{i},{ref.hex()},{share}\n")
        return buf.getvalue().encode()

    def proof_line(self, index: int) -> dict:
        proof = ShareProof(self.refs[index], self.shares[index], index, self.tree.size, tuple(self.tree.proof(index)),
                           self.tree.root_hash, self.tree.total)
        return {"participant_id": self.participants[index].participant_id, "salt": self.salt.hex(), "proof": proof.to_json()}


def read_participants(path: str | Path, rule: str) -> list[Participant]:
    """A CSV with a header: ``participant_id`` and, for ``pro_rata``, ``weight`` (a positive whole number)."""
    if rule not in RULES:
        raise MutualAidError(f"unknown rule {rule!r}", reason="bad_argument", hint="use equal or pro_rata")
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise MutualAidError(f"cannot read participants file {path}: {exc.strerror}", reason="bad_argument",
                             hint="pass a CSV with a participant_id column (and weight for pro_rata)") from None
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or "participant_id" not in rows[0]:
        raise MutualAidError(f"{path} has no participants", reason="bad_argument",
                             hint="the first line must be a header with participant_id (and weight for pro_rata)")
    out, seen = [], set()
    for line, row in enumerate(rows, start=2):
        pid = (row.get("participant_id") or "").strip()
        if not pid or len(pid) > MAX_PARTICIPANT_ID:
            raise MutualAidError(f"{path} line {line}: participant_id must be 1..{MAX_PARTICIPANT_ID} characters",
                                 reason="bad_argument", hint="fix the participants file")
        if pid in seen:
            raise MutualAidError(f"{path} line {line}: participant {pid!r} is listed twice", reason="bad_argument",
                                 hint="each participant takes one share")
        seen.add(pid)
        weight = 1
        if rule == "pro_rata":
            raw = (row.get("weight") or "").strip()
            if not raw.isdigit() or not raw.isascii() or int(raw) <= 0:
                raise MutualAidError(f"{path} line {line}: weight must be a positive whole number, got {raw!r}",
                                     reason="bad_argument", hint="pro_rata needs a weight column")
            weight = int(raw)
        out.append(Participant(pid, weight))
    return out


def build_apportionment(participants: list[Participant], payout: int, rule: str, salt: bytes | None = None) -> Apportionment:
    """Split ``payout`` (largest remainder, ties to the earlier line) and build the share tree."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    try:
        shares = apportion(payout, rule, participants=len(participants), weights=[p.weight for p in participants])
        refs = [participant_ref(salt, p.participant_id) for p in participants]
        tree = ShareTree(refs, shares)
    except ApportionmentError as exc:
        raise MutualAidError(str(exc), reason=exc.reason, hint="check the payout and the participants file") from None
    return Apportionment(rule, salt, participants, refs, shares, tree)


def write_apportionment(out: str | Path, a: Apportionment, claim_key: bytes | None = None) -> dict:
    """Write shares.csv, proofs.jsonl and apportionment.json into ``out``; returns the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    share_list = a.share_list()
    _write_atomic(out / "shares.csv", share_list)
    with open(out / "proofs.jsonl.tmp", "w") as fh:
        for i in range(a.tree.size):
            fh.write(json.dumps(a.proof_line(i)) + "\n")
    os.replace(out / "proofs.jsonl.tmp", out / "proofs.jsonl")
    summary = {"claim_key": "0x" + claim_key.hex() if claim_key else None, "rule": a.rule, "participants": a.tree.size,
               "payout": str(a.payout), "share_root": "0x" + a.tree.root_hash.hex(),
               "share_list_sha256": "0x" + hashlib.sha256(share_list).hexdigest()}
    _write_atomic(out / "apportionment.json", json.dumps(summary, indent=2).encode())
    return summary


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def read_proof_line(path: str | Path, participant_id: str) -> dict:
    """The line for ``participant_id`` in a proofs file (a participant's own file has just its line)."""
    try:
        fh = open(path)
    except OSError as exc:
        raise MutualAidError(f"cannot read proof file {path}: {exc.strerror}", reason="bad_argument",
                             hint="pass the proof line the organiser gave you") from None
    with fh:
        for n, line in enumerate(fh, start=1):
            try:
                obj = json.loads(line)
            except ValueError:
                raise ShareVerificationError(f"{path} line {n} is not JSON", reason="malformed") from None
            if isinstance(obj, dict) and obj.get("participant_id") == participant_id:
                return obj
    raise ShareVerificationError(f"{path} has no proof for participant {participant_id!r}", reason="no_proof",
                                 hint="ask the organiser for your proof line")


def verify_participant(line: dict, participant_id: str, on_chain: dict) -> dict:
    """Check one participant's share against the apportionment read from the chain (MutualAid).

    Recomputes the reference from the participant's own id and the salt, then the path to the anchored root
    and total; the proof's own root, total and size are not trusted.
    """
    try:
        salt = bytes.fromhex(line["salt"])
        proof = ShareProof.from_json(line["proof"])
        ref = participant_ref(salt, participant_id)
    except (KeyError, TypeError, ValueError) as exc:
        reason = getattr(exc, "reason", "malformed")
        raise ShareVerificationError(f"the proof line is malformed: {exc}", reason=reason) from None
    if proof.participant_ref != ref:
        raise ShareVerificationError(f"the proof is not for participant {participant_id!r} (its reference differs)",
                                     reason="wrong_participant", hint="check the id and ask the organiser for your own line")
    try:
        proof.verify(on_chain["share_root"], on_chain["payout"], on_chain["participants"])
    except ProofError as exc:
        raise ShareVerificationError(f"share of {participant_id!r} does not verify: {exc}", reason=exc.reason) from None
    return {"valid": True, "participant_id": participant_id, "share": str(proof.share), "leaf_index": proof.leaf_index,
            "participants": on_chain["participants"], "payout": str(on_chain["payout"])}


def check_published_shares(path: str | Path, on_chain: dict) -> dict:
    """Anyone: the published share list hashes to the anchored hash, sums to the payout and rebuilds the root."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise MutualAidError(f"cannot read share list {path}: {exc.strerror}", reason="bad_argument") from None
    if on_chain["share_list_hash"] != bytes(32) and hashlib.sha256(data).digest() != on_chain["share_list_hash"]:
        raise ShareVerificationError("the share list is not the one anchored (SHA-256 differs)", reason="list_hash_mismatch")
    refs, shares = [], []
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode())))
        for i, row in enumerate(rows):
            if int(row["index"]) != i:
                raise ValueError(f"row {i} has index {row['index']}")
            refs.append(bytes.fromhex(row["participant_ref"]))
            shares.append(int(row["share"]))
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise ShareVerificationError(f"the share list is malformed: {exc}", reason="malformed") from None
    if len(shares) != on_chain["participants"]:
        raise ShareVerificationError(f"the list has {len(shares)} shares, {on_chain['participants']} are anchored",
                                     reason="count_mismatch")
    try:
        check_share_list(refs, shares, on_chain["share_root"], on_chain["payout"])
    except (ProofError, ApportionmentError) as exc:
        raise ShareVerificationError(f"the share list does not match the chain: {exc}", reason=exc.reason) from None
    return {"valid": True, "participants": len(shares), "sum": str(sum(shares)), "payout": str(on_chain["payout"])}
