"""Requester-side runners of the one-answer job kinds: horizontal statistics and fraud signals.

Each participant is asked in its own thread over the signed node API until it answers, refuses or the deadline
passes; an answer is kept only if it is well formed and is exactly what the participant committed on chain. The
job fails at once with the first refusal's reason, and with ``deadline_missed`` for whoever is still missing.
"""
from __future__ import annotations

import threading
from typing import Any

from node.chain.errors import ChainError
from node.stats.jobs import RunnerDeps, fail_job
from node.stats.peer import PeerError
from node.stats.release import fraud_query, release_report
from node.stats.spec import SpecError, horizontal_spec, message_commitment
from privacy.aggregation import Contribution
from privacy.errors import PrivacyError
from privacy.fraud import MembershipAnswer


class OneAnswerRunner:
    """Collect one committed answer from every participant; True when all are in (the job is then released)."""

    kind = ""
    path = ""  # the participant's route
    answer_key = ""  # where the payload sits in the participant's answer

    def __init__(self, deps: RunnerDeps):
        self.deps = deps

    def body(self, job: dict) -> dict[str, Any]:
        return {"chain_job_id": job["chain_job_id"], "spec": job["public_spec"]}

    def commitment(self, job: dict, participant: str, payload: dict) -> str:
        """The commitment a well-formed payload gives (SpecError/PrivacyError when it is not well formed)."""
        raise NotImplementedError

    def kept(self, job: dict, participant: str, answer: dict) -> None:
        """What else of an accepted answer the requester keeps."""

    def run(self, job: dict, wake: threading.Event) -> bool:
        deps, job_id = self.deps, job["id"]
        refusals: dict[str, tuple[str, str]] = {}
        have = set(deps.store.received_for(job_id))
        for p in job["participants"]:
            if p not in have:
                threading.Thread(target=self._ask, args=(job, p, refusals, wake), daemon=True,
                                 name=f"stats-ask-{job_id[:6]}-{p[:8]}").start()
        while not deps.stop.is_set():
            have = set(deps.store.received_for(job_id))
            missing = [p for p in job["participants"] if p not in have]
            if not missing:
                return True
            if refusals:
                who, (reason, message) = sorted(refusals.items())[0]
                name = deps.ledger.member(who).name
                # the ones to leave out of a re-run are the refusers; slower participants may still answer
                fail_job(deps.store, job_id, reason, f"participant {name} ({who}) refused: {message}", sorted(refusals))
                return False
            if deps.clock.now() >= job["deadline"]:
                names = ", ".join(deps.peers.name(p) for p in missing)
                fail_job(deps.store, job_id, "deadline_missed", f"no contribution from {names} before the deadline; "
                                                                "re-run the job without them", missing)
                return False
            wake.wait(0.5)
            wake.clear()
        return False

    def _ask(self, job: dict, participant: str, refusals: dict, wake: threading.Event) -> None:
        deps, body = self.deps, self.body(job)
        limit = deps.peers.answer_limit(job, self.path.rsplit("/", 1)[-1])
        backoff = 0.5
        client = None
        while not deps.stop.is_set() and deps.clock.now() < job["deadline"]:
            try:
                client = client or deps.peers.client(participant)
                answer = client.post_json(self.path, body, max_bytes=limit)
                self._accept(job, participant, answer)
                deps.store.set_participant_status(job["id"], participant, "contributed")
                break
            except PeerError as exc:
                if exc.definitive:
                    refusals[participant] = (exc.reason, str(exc))
                    deps.store.set_participant_status(job["id"], participant, f"refused: {exc.reason}")
                    break
                deps.store.set_participant_status(job["id"], participant, f"retrying: {exc.reason}")
            except (PrivacyError, SpecError, KeyError, TypeError, ValueError) as exc:
                reason = getattr(exc, "reason", "bad_contribution")
                refusals[participant] = (reason, f"invalid contribution: {exc}")
                deps.store.set_participant_status(job["id"], participant, f"invalid: {reason}")
                break
            except ChainError as exc:
                deps.store.set_participant_status(job["id"], participant, f"retrying: {exc.reason}")
            deps.stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
        if client is not None:
            client.close()
        wake.set()

    def _accept(self, job: dict, participant: str, answer: dict) -> None:
        """Keep an answer only if it is well formed and is exactly what the participant committed on chain.

        What else is kept of it (the owner's release report: its record count bounds the plausibility check, its
        suppressed buckets are withheld again) is stored first: the stored answer is what lets ``run`` see every
        answer in and release the job, which must not happen with an owner's report still missing."""
        payload = answer[self.answer_key]
        commitment = self.commitment(job, participant, payload)
        if self.deps.ledger.commitment_of(job["chain_job_id"], participant).hex() != commitment:
            raise SpecError("answer differs from the participant's commitment on chain", reason="commitment_mismatch")
        self.kept(job, participant, answer)
        self.deps.store.add_received(job["id"], participant, payload, commitment)


class HorizontalRunner(OneAnswerRunner):
    kind, path, answer_key = "horizontal", "/stats/contribute", "contribution"

    def commitment(self, job: dict, participant: str, payload: dict) -> str:
        contribution = Contribution.from_dict(payload, horizontal_spec(job["public_spec"]),
                                              self.deps.key.private_key.public_key)
        if contribution.participant != participant:
            raise SpecError("contribution names another participant", reason="bad_contribution")
        return contribution.commitment

    def kept(self, job: dict, participant: str, answer: dict) -> None:
        # the owner's gate decisions (its k, what it suppressed): the release step applies them again
        self.deps.store.set_participant_release(job["id"], participant, release_report(answer.get("release")))


class FraudRunner(OneAnswerRunner):
    kind, path, answer_key = "fraud", "/stats/fraud", "answer"

    def body(self, job: dict) -> dict[str, Any]:
        return super().body(job) | {"query": fraud_query(job).query().to_dict()}

    def commitment(self, job: dict, participant: str, payload: dict) -> str:
        public = job["public_spec"]
        answer = MembershipAnswer.from_dict(payload)
        if answer.member != participant or answer.query_id != public["job_id"] or len(answer.double_blinded) != public["persons"]:
            raise SpecError("fraud answer does not match the query", reason="bad_contribution")
        return message_commitment(payload)
