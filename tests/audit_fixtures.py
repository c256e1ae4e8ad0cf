"""Helpers for the audit tests: random consortium activity on a real anvil, and what the chain says."""
from __future__ import annotations

import os
import random

from node.audit.decode import ConsortiumLogs, canonical
from node.chain.deployment import Purpose
from node.chain.ledger import dataset_id
from node.chain.reasons import DenialReason

DATASETS = ["claims", "policies", "user_features"]
MEMBERS = ["insurer_a", "insurer_b", "platform"]


def chain_events(consortium) -> list[dict]:
    """Every consortium event from the deployment block, decoded generically (the test's ground truth)."""
    source = ConsortiumLogs(consortium.gateway)
    out = []
    for lg in source.logs(consortium.deployment.deployment_block, consortium.gateway.block_number()):
        decoded = source.decode_generic(lg)
        if decoded:
            out.append({"event": decoded[1], "args": canonical(decoded[2]), "block": lg.block_number,
                        "log_index": lg.log_index, "tx_hash": lg.tx_hash, "ts": lg.timestamp})
    return out


def random_activity(consortium, rng: random.Random, steps: int, on_step=None) -> None:
    """Grants, batched accesses and denials, revocations, cards, jobs and evidence anchors, in random order."""
    c = consortium
    grants: list[tuple[str, int]] = []  # (owner name, grant id)
    for step in range(steps):
        op = rng.choice(["grant", "access", "access", "access", "denial", "revoke", "job", "anchor", "card"])
        owner = rng.choice(MEMBERS)
        if op == "grant" or (op in ("access", "revoke") and not grants):
            grantee = rng.choice([m for m in MEMBERS if m != owner])
            gid = c[owner].grant(c.accounts[grantee].address, dataset_id(rng.choice(DATASETS)),
                                 rng.choice(list(Purpose)), expires_at=c.now() + 3600)
            grants.append((owner, gid))
        elif op == "access":
            mine = [(o, g) for o, g in grants if o == owner] or grants
            o, _ = rng.choice(mine)
            ids = [rng.choice([g for oo, g in grants if oo == o]) for _ in range(rng.randint(1, 40))]
            c[o].record_access_batch(ids, [os.urandom(32) for _ in ids], [rng.randint(0, 500) for _ in ids]).wait()
        elif op == "denial":
            n = rng.randint(1, 10)
            c[owner].record_denial_batch([c.accounts[rng.choice(MEMBERS + ["outsider"])].address for _ in range(n)],
                                         [dataset_id(rng.choice(DATASETS)) for _ in range(n)],
                                         [rng.choice(list(Purpose)) for _ in range(n)],
                                         [int(rng.choice(list(DenialReason))) for _ in range(n)],
                                         [os.urandom(32) for _ in range(n)]).wait()
        elif op == "revoke":
            o, g = rng.choice(grants)
            if c[o].grant_status(g) == 0:
                c[o].revoke(g)
        elif op == "job":
            c[owner].open_job(os.urandom(32), [c.accounts[m].address for m in MEMBERS if m != owner], os.urandom(32),
                              rng.choice([1, 5, 10]), c.now() + 600)
        elif op == "anchor":
            c[owner].anchor_batch(os.urandom(32), rng.randint(1, 100), os.urandom(32))
        elif op == "card":
            if c["regulator"].member(c.accounts[owner].address).status.name == "ACTIVE":
                c["regulator"].warn(c.accounts[owner].address, os.urandom(32))
            else:
                c["regulator"].reinstate(c.accounts[owner].address, os.urandom(32))
        if on_step is not None:
            on_step(step)
