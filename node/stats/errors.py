"""Statistics errors, each with its machine-readable ``reason`` and its ``http_status`` (node/api/deps.py maps them).

The requester's own refusals are SpecErrors; a participant's protocol refusals are StatsRefusals, which are
release-gate refusals (node/access/release_gate.py) like the gate's own, so one handler answers both.
"""
from __future__ import annotations

from node.access.release_gate import ReleaseRefusal
from node.stats.spec import SpecError


class KeyNotReady(SpecError):
    reason, http_status = "key_not_ready", 503


class UnknownJob(SpecError):
    reason, http_status = "unknown_job", 404


class NotFailed(SpecError):
    reason, http_status = "not_failed", 409


class StatsRefusal(ReleaseRefusal):
    """A request this participant refuses (the gate's refusals are ReleaseRefusal itself, already logged on chain;
    these are protocol refusals). ``reason`` may be given for a refusal that passes on a spec check's reason."""

    reason = "refused"
    http_status = 400

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(self.http_status, reason or self.reason, message)


class InvalidJobRequest(StatsRefusal):
    """The request or its spec is malformed (the spec checks' own reason when they give one)."""

    reason, http_status = "bad_spec", 422


class BadJobId(InvalidJobRequest):
    reason = "bad_job"


class BadQuery(InvalidJobRequest):
    reason = "bad_query"


class MalformedMessage(InvalidJobRequest):
    reason = "malformed_message"


class NotRequester(StatsRefusal):
    reason, http_status = "not_requester", 403


class WrongKey(StatsRefusal):
    reason, http_status = "wrong_key", 403


class NotParticipant(StatsRefusal):
    reason, http_status = "not_participant", 403


class SpecMismatch(StatsRefusal):
    reason, http_status = "spec_mismatch", 409


class JobNotOpen(StatsRefusal):
    reason, http_status = "job_not_open", 409


class AlreadyCommitted(StatsRefusal):
    reason, http_status = "already_committed", 409


class NoSession(StatsRefusal):
    reason, http_status = "no_session", 409
