"""The audit feature inside a running node: indexer thread, queries, anomaly checks and web sessions.

``install_audit(app, ctx)`` is the one hook the node calls: it mounts the regulator API and pages and
runs the indexer for the app's lifetime. The indexer runs on a node whose own member is a regulator or
an auditor (the nodes that serve these views); ``CONSORTIUM_AUDIT_INDEXER=on|off`` overrides that, and
``consortium audit sync`` catches up any node's index by hand.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI

from node.audit.anomalies import AnomalyDetector
from node.audit.denial_proofs import DenialProofs, DenialProver, http_fetch
from node.audit.indexer import AuditIndexer
from node.audit.queries import AuditQueries
from node.audit.web_auth import WebSessions
from node.chain.deployment import Role
from node.chain.ledger import MemberRecord

log = logging.getLogger("consortium.audit")

_MEMBERS_TTL = 5.0


class AuditService:
    def __init__(self, ctx):
        self.ctx = ctx
        self.indexer = AuditIndexer(ctx.engine, ctx.gateway, ctx.deployment,
                                    poll_seconds=float(os.environ.get("CONSORTIUM_AUDIT_POLL_SECONDS", "1.0")))
        self.queries = AuditQueries(ctx.engine)
        self.anomalies = AnomalyDetector(ctx.engine)
        # Each indexed denial is proven with the owner's copy of the signed request, or flagged.
        self.denial_proofs = DenialProofs(ctx.engine, ctx.gateway.chain_id,
                                          http_fetch(self.members, ctx.ledger.account, ctx.gateway.chain_id))
        self.denial_prover = DenialProver(self.denial_proofs, float(os.environ.get("CONSORTIUM_AUDIT_POLL_SECONDS", "1.0")) * 2)
        self.web = WebSessions(ctx.settings.home)
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
        return self.ctx.ledger.member(self.ctx.address)

    def members(self) -> list[MemberRecord]:
        with self._members_lock:
            at, cached = self._members
            if time.monotonic() - at > _MEMBERS_TTL:
                cached = self.ctx.ledger.members()
                self._members = (time.monotonic(), cached)
            return cached

    def forget_members(self) -> None:
        with self._members_lock:
            self._members = (0.0, [])

    def member_names(self) -> dict[str, str]:
        return {m.address: m.name for m in self.members()}


def install_audit(app: FastAPI, ctx) -> AuditService:
    """Mount the audit API and web pages on ``app`` and run the indexer while the app runs."""
    from node.api import audit as audit_api
    from node.api import pages

    service = AuditService(ctx)
    app.state.audit = service
    app.include_router(audit_api.router)
    app.include_router(pages.router)
    pages.mount_static(app)
    pages.install_refusal_handler(app)
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a):
        service.start()
        try:
            async with previous(a) as state:
                yield state
        finally:
            service.stop()

    app.router.lifespan_context = lifespan
    return service
