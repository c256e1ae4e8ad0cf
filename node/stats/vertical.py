"""Requester-side runner of a vertical job: the multi-message exchange with the platform that holds the features.

The platform blinds its ids per bucket, the insurer (this node, the label owner) blinds them again, sends its
own ids with encrypted labels in batches, and gets back encrypted sums per bucket, which must be what the
platform committed on chain.
"""
from __future__ import annotations

import threading
import time

from node.stats import local
from node.stats.jobs import RunnerDeps, executor_for, fail_job
from node.stats.peer import PeerError
from node.stats.release import release_report
from node.stats.spec import join_spec, message_commitment
from privacy.join import LabelOwner, PlatformBuckets

LABEL_BATCH_ROWS = 5000


class VerticalRunner:
    kind = "vertical"

    def __init__(self, deps: RunnerDeps, engine):
        self.deps = deps
        self.engine = engine  # the label owner's own rows come from this node's store

    def run(self, job: dict, wake: threading.Event) -> bool:
        deps = self.deps
        platform, chain_job_id = job["participants"][0], job["chain_job_id"]
        rows = local.insurer_rows(self.engine, job["private_spec"])
        deps.store.set_progress(job["id"], label_rows=len(rows))  # the plausibility bound on persons per bucket
        label_owner = LabelOwner(join_spec(job["public_spec"]), deps.key.private_key, rows)
        backoff = 0.5
        while not deps.stop.is_set():
            if deps.clock.now() >= job["deadline"]:
                name = deps.ledger.member(platform).name
                fail_job(deps.store, job["id"], "deadline_missed", f"no answer from {name} before the deadline", [platform])
                return False
            try:
                sums = self._exchange(job, platform, label_owner, len(rows))
                break
            except PeerError as exc:
                if exc.definitive:
                    name = deps.ledger.member(platform).name
                    deps.store.set_participant_status(job["id"], platform, f"refused: {exc.reason}")
                    fail_job(deps.store, job["id"], exc.reason, f"participant {name} ({platform}) refused: {exc}", [platform])
                    return False
                deps.store.set_participant_status(job["id"], platform, f"retrying: {exc.reason}")
            deps.stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
        else:
            return False
        commitment = message_commitment(sums)
        if deps.ledger.commitment_of(chain_job_id, platform).hex() != commitment:
            fail_job(deps.store, job["id"], "commitment_mismatch",
                     "the bucket sums differ from the platform's commitment on chain", [platform])
            return False
        deps.store.add_received(job["id"], platform, sums, commitment)
        deps.store.set_participant_status(job["id"], platform, "contributed")
        return True

    def _exchange(self, job: dict, platform: str, label_owner: LabelOwner, rows: int) -> dict:
        deps, chain_job_id = self.deps, job["chain_job_id"]
        executor = executor_for(rows)
        with deps.peers.client(platform, timeout=900.0) as client:
            deps.store.set_progress(job["id"], phase="platform blinding")
            first = client.post_json("/stats/vertical/start", {"chain_job_id": chain_job_id, "spec": job["public_spec"]},
                                     max_bytes=deps.peers.answer_limit(job, "vertical/start", rows))
            if "sums" in first:
                deps.store.set_participant_release(job["id"], platform, release_report(first.get("release")))
                return first["sums"]
            deps.store.set_progress(job["id"], phase="double blinding")
            buckets = PlatformBuckets.from_dict(first["buckets"], label_owner.spec)
            double = label_owner.double_blind(buckets, executor_for(sum(len(v) for v in buckets.buckets.values())))
            del buckets, first
            client.post_json(f"/stats/vertical/double?job={chain_job_id}", double.to_dict())
            del double
            total = -(-rows // LABEL_BATCH_ROWS)
            deps.store.set_progress(job["id"], phase="sending encrypted labels", batches=0, batches_total=total)
            width = (deps.key.private_key.public_key.nsquare.bit_length() + 7) // 8
            sent, last_report = 0, time.monotonic()
            for batch in label_owner.label_batches(LABEL_BATCH_ROWS, executor):
                raw = b"".join(batch.points) + b"".join(c.to_bytes(width, "little") for c in batch.ciphertexts)
                client.post_bytes(f"/stats/vertical/labels?job={chain_job_id}", raw)
                sent += 1
                if time.monotonic() - last_report > 1.0 or sent == total:
                    deps.store.set_progress(job["id"], batches=sent)
                    last_report = time.monotonic()
            deps.store.set_progress(job["id"], phase="platform summing")
            finished = client.post_json(f"/stats/vertical/finish?job={chain_job_id}", {},
                                        max_bytes=deps.peers.answer_limit(job, "vertical/finish"))
            deps.store.set_participant_release(job["id"], platform, release_report(finished.get("release")))
            return finished["sums"]
