"""The regulator's access-log index (DESIGN.md flow 6): chain events copied into the node's store for fast queries.

``schema``     tables of the index (one SQLAlchemy MetaData, component "audit_index")
``decode``     raw eth_getLogs results to rows, with a fast path for the hot access/denial events
``indexer``    follows the chain from the deployment block; resumable, idempotent
``queries``    filters, pagination, CSV/JSON export, daily aggregates, each answer pinned to a block
``anomalies``  window violations, denial bursts, volume spikes, small-cohort and differencing jobs
``verify``     re-reads a block range from the chain and reports differences with the index
"""
