"""What every requester-side job runner shares: the chain's clock, the process pool, failing a job, opening it on chain.

A runner gets these as explicit values (:class:`RunnerDeps`), never the node context: what a runner may touch is
what it is handed.
"""
from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass

from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger
from node.stats.keys import StatsKey
from node.stats.peer import Peers
from node.stats.store import COLLECTING, FAILED, PUBLISHED, StatsStore
from privacy import workers

log = logging.getLogger("consortium.stats")

# Below this many rows the process pool costs more (start, pickling) than it saves.
PARALLEL_ROWS = 20_000


class ChainClock:
    def __init__(self, gateway: ChainGateway):
        self.gateway = gateway

    def now(self) -> int:
        """The chain's clock: the timestamp the next block would get (deadlines are checked by the contract
        against block time, which can run ahead of this machine's clock, e.g. on a dev chain moved forward)."""
        try:
            return int(self.gateway.rpc(lambda: self.gateway.w3.eth.get_block("pending"))["timestamp"])
        except Exception:  # a node without the pending block: the latest block, or the local clock if later
            try:
                return max(self.gateway.block_time(), int(time.time()))
            except Exception:
                return int(time.time())


def executor_for(rows: int) -> concurrent.futures.Executor | None:
    """A process pool for the big steps (blinding, encryption); None for small jobs."""
    if rows < PARALLEL_ROWS:
        return None
    return workers.shared_pool()


@dataclass
class RunnerDeps:
    """Everything a job runner reads or changes, handed over explicitly."""

    store: StatsStore
    ledger: Ledger
    key: StatsKey
    clock: ChainClock
    peers: Peers
    stop: threading.Event


def fail_job(store: StatsStore, job_id: str, reason: str, message: str, missing: list[str]) -> None:
    """Mark a job FAILED with its reason and the participants a re-run should leave out (once: a later failure keeps
    the first reason, and a published job stays published)."""
    with store.lock:
        job = store.job(job_id)
        if job is None or job["state"] in (PUBLISHED, FAILED):
            return
        store.update_job(job_id, state=FAILED, error_reason=reason, error_message=message, missing=sorted(missing))
        store.set_progress(job_id, phase="failed")
    log.warning("statistics job %s failed: %s (%s)", job_id, reason, message)


def open_on_chain(deps: RunnerDeps, job: dict) -> dict:
    """openJob for a stored job (once: a job resumed after a crash between openJob and storing its id is found
    by its spec hash), then the job COLLECTING."""
    h = bytes.fromhex(job["spec_hash"])
    opened = deps.ledger.jobs_opened(h, deps.ledger.address)
    if opened:
        chain_job_id, deadline = opened[-1]
    else:
        deadline = deps.clock.now() + job["deadline_seconds"]
        fingerprint = bytes.fromhex(job["public_spec"]["public_key"]["fingerprint"])
        chain_job_id = deps.ledger.open_job(h, job["participants"], fingerprint, job["public_spec"]["min_cohort"], deadline)
    deps.store.update_job(job["id"], chain_job_id=chain_job_id, deadline=deadline, state=COLLECTING)
    deps.store.set_progress(job["id"], phase="collecting")
    return deps.store.job(job["id"])
