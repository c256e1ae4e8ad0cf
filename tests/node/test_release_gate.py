"""The owner's release gate in process (SQLite store, a stub grant decision, a list for the access log).

The same rules run against real nodes in test_release_attacks.py; here each rule's edges are checked
directly, and what the gate writes: denials with their reason codes, the history and the budget.
"""
from __future__ import annotations

import pytest

from node.access.release_gate import ReleaseGate, ReleaseRefusal, Request, history
from node.chain.deployment import Purpose
from node.chain.reasons import DenialReason
from node.store.db import create_store_engine
from tests.gate_fixtures import Enforcer, Log

REQUESTER = "0x" + "ab" * 20


@pytest.fixture
def gate(tmp_path):
    engine = create_store_engine(f"sqlite:///{tmp_path / 'node.db'}")
    yield ReleaseGate(engine, Enforcer(), Log(), floor=10, epsilon_budget=1.0)
    engine.dispose()


def req(ref: str = "r") -> Request:
    return Request(REQUESTER, "claims", Purpose.STATISTICS, b"\x01" * 32, ref)


PEOPLE = [f"p{i}" for i in range(200)]


def test_buckets_under_k_distinct_persons_are_suppressed_and_k_is_raised_never_lowered(gate):
    out = gate.release(req(), {"a": PEOPLE[:10], "b": ["p1"] * 11 + PEOPLE[20:24]}, job_min_cohort=3,
                       records={"a": 10, "b": 15})
    assert out.min_cohort == 10 and out.report()["min_cohort_raised"]
    assert out.released == ["a"] and out.suppressed == ["b"] and out.records == 10  # 15 claims, 5 persons: suppressed
    other = Request(REQUESTER, "policies", Purpose.STATISTICS, b"\0" * 32, "k")  # no history there
    assert gate.release(other, {"a": PEOPLE[:11]}, job_min_cohort=12).suppressed == ["a"]
    assert gate.release(other, {"a": PEOPLE[:12]}, job_min_cohort=12).released == ["a"]


def test_differencing_is_refused_logged_and_not_recorded(gate):
    gate.release(req("first"), {"all": PEOPLE[:100]}, 10)
    with pytest.raises(ReleaseRefusal) as info:
        gate.release(req("second"), {"all": PEOPLE[:99]}, 10)
    assert (info.value.status, info.value.reason) == (403, "differencing")
    denial = gate.access_log[-1]
    assert denial.kind == "denial" and denial.reason_code == int(DenialReason.DIFFERENCING)
    with gate.engine.connect() as conn:
        assert conn.execute(history.select()).all().__len__() == 1  # the refused release left no footprint
    gate.release(req("again"), {"all": PEOPLE[:100]}, 10)  # identical: nothing new, answered, stored once
    gate.release(req("far"), {"all": PEOPLE[:150]}, 10)  # 50 persons more: answered
    with gate.engine.connect() as conn:
        assert conn.execute(history.select()).all().__len__() == 2


def test_a_repeat_is_answered_without_a_check_or_a_write_and_differencing_still_bites_after_it(gate, monkeypatch):
    gate.release(req("first"), {"all": PEOPLE[:100]}, 10)
    gate.release(req("later"), {"all": PEOPLE[:150]}, 10)
    import node.access.release_gate as module

    def no_check(*_a, **_k):
        raise AssertionError("a repeated footprint needs no differencing check")

    monkeypatch.setattr(module, "find_conflict", no_check)
    monkeypatch.setattr(gate, "_record", no_check)
    assert gate.release(req("repeat"), {"all": PEOPLE[:100]}, 10).released == ["all"]
    monkeypatch.undo()
    with pytest.raises(ReleaseRefusal) as info:  # one person off the repeated release: still refused
        gate.release(req("diff"), {"all": PEOPLE[1:100]}, 10)
    assert info.value.reason == "differencing"
    with gate.engine.connect() as conn:
        assert len(conn.execute(history.select()).all()) == 2


def test_a_fingerprint_collision_is_not_taken_for_a_repeat(gate, monkeypatch):
    import node.access.release_gate as module

    monkeypatch.setattr(module, "_fingerprint", lambda footprint: "collides")  # every footprint looks the same
    gate.release(req("first"), {"all": PEOPLE[:100]}, 10)
    with pytest.raises(ReleaseRefusal) as info:  # same fingerprint, one person fewer: checked, refused
        gate.release(req("second"), {"all": PEOPLE[:99]}, 10)
    assert info.value.reason == "differencing"


def test_another_requester_or_dataset_has_its_own_history(gate):
    gate.release(req(), {"all": PEOPLE[:100]}, 10)
    gate.release(Request("0x" + "cd" * 20, "claims", Purpose.STATISTICS, b"\0" * 32, "x"), {"all": PEOPLE[:99]}, 10)
    gate.release(Request(REQUESTER, "policies", Purpose.STATISTICS, b"\0" * 32, "x"), {"all": PEOPLE[:99]}, 10)


def test_epsilon_is_charged_per_requester_and_dataset_and_refused_past_the_budget(gate):
    gate.release(req(), {"all": PEOPLE[:50]}, 10, epsilon=0.7)
    with pytest.raises(ReleaseRefusal) as info:
        gate.release(req(), {"all": PEOPLE[:50]}, 10, epsilon=0.4)
    assert info.value.reason == "budget_exhausted"
    assert gate.access_log[-1].reason_code == int(DenialReason.BUDGET_EXHAUSTED)
    gate.release(req(), {"all": PEOPLE[:50]}, 10, epsilon=0.3)  # exactly the rest


@pytest.mark.parametrize("participants,reason", [
    ([REQUESTER, "0x" + "01" * 20, "0x" + "02" * 20], "requester_is_participant"),
    (["0x" + "01" * 20], "too_few_contributors"),
])
def test_contributor_rules_refuse_and_log(gate, participants, reason):
    with pytest.raises(ReleaseRefusal) as info:
        gate.check_contributors(req(), participants)
    assert info.value.reason == reason
    assert gate.access_log[-1].reason_code == int(DenialReason.TOO_FEW_CONTRIBUTORS)
    gate.check_contributors(req(), ["0x" + "01" * 20, "0x" + "02" * 20])


def test_vertical_label_owner_must_be_the_requester(gate):
    gate.check_label_owner(req(), {"label_owner": REQUESTER.upper().replace("0X", "0x")})
    with pytest.raises(ReleaseRefusal) as info:
        gate.check_label_owner(req(), {"label_owner": "0x" + "01" * 20})
    assert info.value.reason == "not_label_owner"
