"""The audit feature inside a running node: indexer thread, queries, anomaly checks and web sessions.

The HTTP layer (``node/api/app.py``) builds one ``AuditService`` from the node's parts, mounts the regulator
API and pages on it, and starts and stops it with the app. The indexer runs on a node whose own member
is a regulator or an auditor (the nodes that serve these views); ``CONSORTIUM_AUDIT_INDEXER=on|off``
overrides that, and ``consortium audit sync`` catches up any node's index by hand. No FastAPI here.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from sqlalchemy.engine import Engine

from node.audit.anomalies import AnomalyDetector
from node.audit.denial_proofs import DenialProofs, DenialProver, http_fetch
from node.audit.indexer import AuditIndexer
from node.audit.queries import AuditQueries
from node.audit.web_auth import WebSessions
from node.chain.deployment import Deployment, Role
from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger, MemberRecord

log = logging.getLogger("consortium.audit")

_MEMBERS_TTL = 5.0


class AuditService:
    def __init__(self, engine: Engine, gateway: ChainGateway, deployment: Deployment, ledger: Ledger, home: Path):
        self.engine = engine
        self.gateway = gateway
        self.ledger = ledger
        self.address = ledger.address
        poll = float(os.environ.get("CONSORTIUM_AUDIT_POLL_SECONDS", "1.0"))
        self.indexer = AuditIndexer(engine, gateway, deployment, poll_seconds=poll)
        self.queries = AuditQueries(engine)
        self.anomalies = AnomalyDetector(engine)
        # Each indexed denial is proven with the owner's copy of the signed request, or flagged.
        self.denial_proofs = DenialProofs(engine, gateway.chain_id, http_fetch(self.members, ledger.account, gateway.chain_id))
        self.denial_prover = DenialProver(self.denial_proofs, poll * 2)
        self.web = WebSessions(home)
        self._members: tuple[float, list[MemberRecord]] = (0.0, [])
        self._members_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def should_index(self) -> bool:
        choice = os.environ.get("CONSORTIUM_AUDIT_INDEXER", "auto").lower()
        if choice in ("on", "1", "true"):
            return True
        if choice in ("off", "0", "false"):
            return False
        try:
            return self.own_member().role in (Role.REGULATOR, Role.AUDITOR)
        except Exception:  # chain down at start-up: index anyway, the thread retries
            return True

    def start(self) -> None:
        self.web.ensure_token()
        if self.should_index():
            self.indexer.start()
            self.denial_prover.start()
            log.info("audit indexer started from block %s", self.indexer.indexed_block() + 1)

    def stop(self) -> None:
        self.denial_prover.stop()
        self.indexer.stop()

    # ------------------------------------------------------------------ members (for roles and names)

    def own_member(self) -> MemberRecord:
        return self.ledger.member(self.address)

    def members(self) -> list[MemberRecord]:
        with self._members_lock:
            at, cached = self._members
            if time.monotonic() - at > _MEMBERS_TTL:
                cached = self.ledger.members()
                self._members = (time.monotonic(), cached)
            return cached

    def forget_members(self) -> None:
        with self._members_lock:
            self._members = (0.0, [])

    def member_names(self) -> dict[str, str]:
        return {m.address: m.name for m in self.members()}
