"""Everything a running node holds: settings, keys, chain, store and services, built once at start-up."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from node.access.auth import RequestVerifier
from node.access.authz_cache import AuthorizationCache
from node.access.enforcement import Enforcer
from node.access.log import AccessLog
from node.chain.deployment import Deployment
from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger
from node.connect import open_ledger
from node.evidence.service import EvidenceService, EvidenceSettings
from node.keys import MemberKeys, load_member_keys, resolve_passphrase
from node.runtime.settings import NodeSettings
from node.store.datasets import init_datasets
from node.store.db import create_store_engine

if TYPE_CHECKING:
    from node.access.release_gate import ReleaseGate
    from node.network.governance import SignerGovernor
    from node.stats.service import StatsService
    from privacy.paillier import PrivateKey

log = logging.getLogger("consortium.node")


@dataclass
class NodeContext:
    settings: NodeSettings
    keys: MemberKeys
    gateway: ChainGateway
    deployment: Deployment
    ledger: Ledger
    engine: Engine
    verifier: RequestVerifier
    enforcer: Enforcer
    access_log: AccessLog
    evidence: EvidenceService
    stats: "StatsService | None" = None  # joint statistics (node/stats), built with the context
    release_gate: "ReleaseGate | None" = None  # what leaves this node with data in it (node/access/release_gate.py)
    signer_governor: "SignerGovernor | None" = None  # votes the validator set from the registry (runs_validator)

    @property
    def address(self) -> str:
        return self.keys.address

    @property
    def paillier_key(self) -> "PrivateKey":
        """The node's long-lived Paillier private key (node/paillier_store.py), once loaded at start."""
        return self.stats.wait_key()

    @classmethod
    def build(cls, settings: NodeSettings, keys: MemberKeys | None = None, passphrase: str | None = None) -> "NodeContext":
        if keys is None:
            passphrase = passphrase or resolve_passphrase()
            keys = load_member_keys(settings.keys, passphrase)
        ledger, deployment = open_ledger(settings, keys)
        gateway = ledger.gateway
        settings.home.mkdir(parents=True, exist_ok=True)
        engine = create_store_engine(settings.db_url)
        init_datasets(engine)
        verifier = RequestVerifier(gateway.chain_id, keys.address, settings.auth_window_seconds, settings.auth_max_nonces)
        access_log = AccessLog(engine, ledger, flush_seconds=settings.log_flush_seconds, batch_max=settings.log_batch_max)
        cache = AuthorizationCache(ledger) if settings.authz_cache else None
        evidence = EvidenceService(engine, ledger, EvidenceSettings(
            max_batch_size=settings.evidence_batch_size, max_batch_age=settings.evidence_batch_age,
            document_dir=settings.home / "documents" if settings.evidence_keep_documents else None,
            max_document_bytes=settings.evidence_max_document_bytes))
        ctx = cls(settings, keys, gateway, deployment, ledger, engine, verifier, Enforcer(ledger, cache), access_log, evidence)
        from node.access.release_gate import ReleaseGate
        from node.stats.service import StatsService

        ctx.release_gate = ReleaseGate(engine, ctx.enforcer, access_log, floor=settings.release_min_cohort,
                                       epsilon_budget=settings.release_epsilon_budget,
                                       history_compared=settings.release_history_compared)
        # the Paillier key is unlocked with the member passphrase; the service gets its parts, never the context
        ctx.stats = StatsService.for_node(ledger=ledger, engine=engine, home=settings.home, passphrase=passphrase,
                                          x25519=keys.x25519, x25519_public=keys.x25519_public, gate=ctx.release_gate,
                                          peer_answer_max_bytes=settings.peer_answer_max_bytes)
        if settings.runs_validator:
            from node.network.governance import SignerGovernor

            ctx.signer_governor = SignerGovernor(ledger, settings.rpc_url, set(settings.validator_accounts),
                                                 engine=settings.validator_engine)
        return ctx

    def start(self) -> None:
        self.access_log.start()
        self.evidence.start()
        if self.stats is not None:
            self.stats.start()  # loads the Paillier key and registers it in the background
        if self.signer_governor is not None:
            self.signer_governor.start()
        log.info("node %s (%s) started with settings %s", self.settings.name, self.address, self.settings.public_view())

    def stop(self) -> None:
        if self.signer_governor is not None:
            self.signer_governor.stop()
        if self.stats is not None:
            self.stats.stop()
        self.evidence.stop()
        self.access_log.stop()
        self.engine.dispose()
