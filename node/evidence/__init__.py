"""Claim evidence at the member node (DESIGN.md flow 5).

Documents are reduced to SHA-256 hashes, bound to their claim and document type in an RFC 6962 leaf,
batched, and each batch root is anchored once on EvidenceRegistry. A durable outbox in the store
(``store.py``) makes every accepted hash anchored exactly once across crashes and chain outages
(``service.py``). Auditors verify with only the document, the proof file and a chain RPC (``verify.py``).

Mounting in the node::

    from node.evidence.service import EvidenceService, EvidenceSettings
    from node.evidence.store import EVIDENCE_METADATA, create_store_engine
    from node.evidence.api import router
    app.state.evidence = EvidenceService(engine, ledger, EvidenceSettings(...)); app.state.evidence.start()
    app.include_router(router)
"""
