"""Test server: only the evidence router, in a process of its own that the crash tests kill -9.

    python tests/evidence_standalone.py --db PATH --rpc URL --deployment FILE --keys FOLDER --port N
The passphrase for the keys comes from CONSORTIUM_PASSPHRASE (or CONSORTIUM_PASSPHRASE_FILE).

It is no node: it has no registry-backed request verification, so it answers every caller as the key folder's
own operator (the routes' caller dependencies are overridden). It listens on loopback for the test only.
"""
from __future__ import annotations

import argparse
import logging
import sys
from contextlib import asynccontextmanager
from pathlib import Path

from node.errors import ConsortiumError


def build_app(args: argparse.Namespace):
    from evidence_testing import evidence_app

    from node.chain.deployment import Deployment, attach
    from node.chain.gateway import ChainGateway
    from node.chain.ledger import Ledger
    from node.evidence.service import EvidenceService, EvidenceSettings
    from node.evidence.store import create_store_engine
    from node.keys import load_member_keys, resolve_passphrase

    keys = load_member_keys(args.keys, resolve_passphrase())
    gateway = attach(ChainGateway.connect(args.rpc), Deployment.load(args.deployment))
    settings = EvidenceSettings(max_batch_size=args.max_batch_size, max_batch_age=args.max_batch_age,
                                retry_base=args.retry_base, retry_cap=args.retry_cap,
                                document_dir=Path(args.documents) if args.documents else None)
    service = EvidenceService(create_store_engine(args.db), Ledger(gateway, keys.account), settings)

    @asynccontextmanager
    async def lifespan(app):
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = evidence_app(service, keys.address)
    app.router.lifespan_context = lifespan
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="evidence_standalone.py", description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="SQLite file of the evidence outbox")
    parser.add_argument("--rpc", required=True)
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--keys", required=True, help="member key folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8700)
    parser.add_argument("--max-batch-size", type=int, default=100_000)
    parser.add_argument("--max-batch-age", type=float, default=2.0)
    parser.add_argument("--retry-base", type=float, default=0.5)
    parser.add_argument("--retry-cap", type=float, default=30.0)
    parser.add_argument("--documents", help="keep uploaded documents in this folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = build_app(args)
    except ConsortiumError as exc:
        print(f"evidence: error: {exc.one_line()}", file=sys.stderr)
        return 1
    import uvicorn

    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
