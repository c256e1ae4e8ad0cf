"""The regulator's check that each denial on chain was a real request by the named requester.

An owner records a denial with the EIP-712 digest of the refused request as its queryHash and keeps
the signed request (node/access/signed_request.py). For every indexed denial, the regulator's node asks the
owner for that request (``GET /denials/{digest}/request``, signed, regulator only) and verifies it.
The outcome is stored per denial; only ``proven`` denials count toward ``denial_burst``, and every
other outcome is reported as an ``unproven_denial`` anomaly against the owner that recorded it.

==========================  =======================================================================
proven                      the named requester signed a request to this owner hashing to the record
no_request                  the owner cannot produce a request for it (or recorded a zero hash)
not_signed_by_requester     the request produced is signed by someone else than the named requester
digest_mismatch             the request produced does not hash to the on-chain record (or is for
                            another node)
malformed_request           the owner's answer is not a signed request
replayed                    the request already proves an earlier denial: one request, one denial
unreachable                 the owner did not answer; retried on every pass until it does
==========================  =======================================================================
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text, and_, select
from sqlalchemy.engine import Engine

from node.access.signed_request import ZERO32, ProofError, verify_denial_request
from node.audit import schema as s
from node.store.db import migrate
from node.worker import BackgroundLoop

log = logging.getLogger("consortium.audit.denials")

PROVEN, UNREACHABLE = "proven", "unreachable"
STATUSES = (PROVEN, "no_request", "not_signed_by_requester", "digest_mismatch", "malformed_request", "replayed", UNREACHABLE)

metadata = MetaData()
proofs = Table(
    "audit_denial_proofs", metadata,
    Column("pos", s.POS, primary_key=True, autoincrement=False),  # the denial's row in audit_log
    Column("status", String(32), nullable=False, index=True),
    Column("detail", Text),
    Column("checked_at", BigInteger, nullable=False),
)


class OwnerUnreachable(Exception):
    """The owner's node could not be asked (no endpoint, down, or an unexpected answer)."""


# fetch(owner address, digest) -> the signed-request document, or None when the owner has none (404).
Fetch = Callable[[str, bytes], "dict | None"]


def ensure_schema(engine: Engine) -> None:
    migrate(engine, "audit_denial_proofs", metadata, 1)


class DenialProofs:
    def __init__(self, engine: Engine, chain_id: int, fetch: Fetch):
        self.engine = engine
        self.chain_id = chain_id
        self.fetch = fetch
        ensure_schema(engine)

    def check(self, limit: int = 500) -> dict[str, int]:
        """Prove (or flag) up to ``limit`` indexed denials not settled yet; returns counts per outcome."""
        lg, req, own = s.log, s.accounts.alias("req"), s.accounts.alias("own")
        with self.engine.connect() as conn:
            todo = conn.execute(
                select(lg.c.pos, req.c.address, own.c.address, lg.c.query_hash)
                .join(req, req.c.id == lg.c.requester).join(own, own.c.id == lg.c.owner)
                .outerjoin(proofs, proofs.c.pos == lg.c.pos)
                .where(and_(lg.c.kind == s.KIND_DENIAL, (proofs.c.pos.is_(None)) | (proofs.c.status == UNREACHABLE)))
                .order_by(lg.c.pos).limit(limit)).all()
            if not todo:
                return {}
            # Digests that already prove a denial: a request proves one denial, the earliest.
            used = {(o, bytes(q)) for o, q in conn.execute(
                select(own.c.address, lg.c.query_hash).join(proofs, proofs.c.pos == lg.c.pos)
                .join(own, own.c.id == lg.c.owner).where(proofs.c.status == PROVEN))}
        outcomes: list[dict] = []
        for pos, requester, owner, qhash in todo:
            status, detail = self._prove(requester, owner, bytes(qhash), used)
            if status == PROVEN:
                used.add((owner, bytes(qhash)))
            outcomes.append({"pos": pos, "status": status, "detail": detail, "checked_at": int(time.time())})
        with self.engine.begin() as conn:
            conn.execute(proofs.delete().where(proofs.c.pos.in_([o["pos"] for o in outcomes])))
            conn.execute(proofs.insert(), outcomes)
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o["status"]] = counts.get(o["status"], 0) + 1
        return counts

    def _prove(self, requester: str, owner: str, qhash: bytes, used: set) -> tuple[str, str]:
        if qhash == ZERO32:
            return "no_request", "the denial was recorded without the hash of a signed request"
        if (owner, qhash) in used:
            return "replayed", "this request already proves an earlier denial by the same owner"
        try:
            document = self.fetch(owner, qhash)
        except OwnerUnreachable as exc:
            return UNREACHABLE, str(exc)[:500]
        if document is None:
            return "no_request", "the owner cannot produce the signed request"
        if not isinstance(document, dict):
            return "malformed_request", "the owner's answer is not a signed request"
        try:
            verify_denial_request(document, chain_id=self.chain_id, owner=owner, requester=requester, query_hash=qhash)
        except ProofError as exc:
            return exc.status, str(exc)
        return PROVEN, ""


def http_fetch(members: Callable[[], list], account, chain_id: int, timeout: float = 10.0) -> Fetch:
    """A Fetch that asks each owner's node, signed with the regulator's ``account``."""
    from node.client import NodeClient

    def fetch(owner: str, digest: bytes) -> dict | None:
        endpoint = next((m.endpoint for m in members() if m.address == owner), "")
        if not endpoint:
            raise OwnerUnreachable(f"{owner} has no endpoint in the registry")
        client = NodeClient(endpoint, account, owner, chain_id, timeout=timeout)
        try:
            r = client.request("GET", f"/denials/0x{digest.hex()}/request")
        except Exception as exc:
            raise OwnerUnreachable(f"{owner} did not answer: {type(exc).__name__}") from None
        finally:
            client.close()
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise OwnerUnreachable(f"{owner} answered HTTP {r.status_code}")
        try:
            return r.json()
        except ValueError:
            return "not json"  # type: ignore[return-value]  # verified as malformed

    return fetch


class DenialProver(BackgroundLoop):
    """Runs ``DenialProofs.check`` every ``seconds`` on the regulator's node."""

    thread_name = "audit-denial-prover"

    def __init__(self, proofs: DenialProofs, seconds: float = 2.0):
        self.proofs = proofs
        self.seconds = seconds
        self._init_loop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                # Keep going while denials get settled; owners still unreachable wait for the next pass.
                while set(self.proofs.check()) - {UNREACHABLE} and not self._stop.is_set():
                    pass
            except Exception as exc:  # chain index or store busy: try again next pass
                log.warning("denial proof pass failed, will retry: %s", exc)
            self._pause(self.seconds)
