"""The request workers (node/runtime/offload.py): queued jobs are taken together, a group's block wraps them,
and no answer leaves before the block has ended; a failed block fails every job in it, a job's own error only it."""
from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager

import pytest

from node.runtime import offload


class Group:
    """A group block that records what happened: entered, ended, and the jobs run inside it."""

    def __init__(self, fail_at_end: bool = False):
        self.fail_at_end = fail_at_end
        self.blocks: list[list[str]] = []
        self.inside: list[str] | None = None
        self.ended = 0

    @contextmanager
    def block(self):
        self.inside = []
        try:
            yield
        finally:
            self.blocks.append(self.inside)
            self.inside = None
        self.ended += 1
        if self.fail_at_end:
            raise RuntimeError("commit failed")

    def job(self, name: str, fail: bool = False) -> str:
        self.inside.append(name)
        if fail:
            raise ValueError(f"{name} refused")
        return name


async def _run_held(group: Group, jobs: list[tuple[str, bool]]) -> list:
    """Hold every worker busy, queue ``jobs`` meanwhile, then let the workers go: the queued jobs are one batch."""
    release = threading.Event()
    holders = [asyncio.ensure_future(offload.in_thread(release.wait, 30)) for _ in range(offload.MAX_WORKERS)]
    await asyncio.sleep(0.2)  # the holders occupy every worker
    ended_when_answered = []

    async def one(name, fail):
        try:
            return await offload.in_thread(group.job, name, fail, group=group.block)
        finally:
            ended_when_answered.append(group.ended)

    tasks = [asyncio.ensure_future(one(name, fail)) for name, fail in jobs]
    await asyncio.sleep(0.1)
    release.set()
    await asyncio.gather(*holders)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(ended >= 1 for ended in ended_when_answered), "an answer left before its group's block ended"
    return results


def test_queued_jobs_run_in_one_group_block_and_each_gets_its_own_answer():
    group = Group()
    results = asyncio.run(_run_held(group, [("a", False), ("b", True), ("c", False)]))
    assert results[0] == "a" and results[2] == "c"
    assert isinstance(results[1], ValueError) and "b refused" in str(results[1])  # its own error, only its own
    assert group.blocks == [["a", "b", "c"]]  # one block for the three


def test_a_block_that_fails_at_its_end_fails_every_job_in_it():
    group = Group(fail_at_end=True)
    results = asyncio.run(_run_held(group, [("a", False), ("b", False)]))
    assert all(isinstance(r, RuntimeError) and "commit failed" in str(r) for r in results)


def test_a_lone_job_without_a_group_is_answered():
    async def go():
        return await offload.in_thread(sum, [1, 2, 3])

    assert asyncio.run(go()) == 6


@pytest.mark.parametrize("n", [offload.MAX_BATCH + 5])
def test_more_jobs_than_a_batch_are_all_answered(n):
    group = Group()
    results = asyncio.run(_run_held(group, [(f"j{i}", False) for i in range(n)]))
    assert results == [f"j{i}" for i in range(n)]
    assert sum(len(b) for b in group.blocks) == n and all(len(b) <= offload.MAX_BATCH for b in group.blocks)


def test_each_job_of_a_batch_runs_in_its_own_callers_context():
    """Two members' queries in one batch: each runs with its own context (the signed request a denial is logged
    with), never the other's, so a refusal can never be recorded against the wrong member's request."""
    import contextvars

    serving = contextvars.ContextVar("serving")
    group = Group()

    async def go():
        release = threading.Event()
        holders = [asyncio.ensure_future(offload.in_thread(release.wait, 30)) for _ in range(offload.MAX_WORKERS)]
        await asyncio.sleep(0.2)

        async def as_member(name):
            serving.set(f"request of {name}")  # set in this task's own context, as the route does
            return await offload.in_thread(lambda: (group.job(name), serving.get())[1], group=group.block)

        tasks = [asyncio.ensure_future(as_member(n)) for n in ("insurer", "platform", "outsider")]
        await asyncio.sleep(0.1)
        release.set()
        await asyncio.gather(*holders)
        return await asyncio.gather(*tasks)

    assert asyncio.run(go()) == ["request of insurer", "request of platform", "request of outsider"]
    assert group.blocks == [["insurer", "platform", "outsider"]]  # one batch, three contexts
