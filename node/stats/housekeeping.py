"""On-chain housekeeping of the requester's failed jobs: abort them once their deadline has passed (the contract
refuses earlier), so the chain does not show them open forever."""
from __future__ import annotations

import logging
import threading

from node.chain.errors import ChainError, ContractRevert
from node.chain.ledger import Ledger
from node.enums import JobState
from node.stats.jobs import ChainClock
from node.stats.store import FAILED, StatsStore

log = logging.getLogger("consortium.stats")


class Housekeeper:
    def __init__(self, store: StatsStore, ledger: Ledger, clock: ChainClock, stop: threading.Event, every: float = 2.0):
        self.store = store
        self.ledger = ledger
        self.clock = clock
        self.stop = stop
        self.every = every
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="stats-housekeeping", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            self.abort_failed_jobs()

    def abort_failed_jobs(self) -> None:
        for job in self.store.jobs_in(FAILED):
            if job["chain_aborted"] or not job["chain_job_id"] or self.clock.now() < (job["deadline"] or 0) + 1:
                continue
            try:
                if self.ledger.get_job(job["chain_job_id"])["state"] == JobState.OPEN:
                    self.ledger.abort_job(job["chain_job_id"])
                self.store.update_job(job["id"], chain_aborted=True)
            except ContractRevert as exc:
                if exc.name != "DeadlineNotPassed":
                    self.store.update_job(job["id"], chain_aborted=True)
            except ChainError as exc:
                log.warning("abort of job %s postponed: %s", job["id"], exc.one_line())
