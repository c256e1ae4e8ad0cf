"""Privacy-preserving fraud signals (DESIGN.md flow 4): in how many members' sets is this person?

A private membership test on the PSI of privacy.psi: the asker blinds H(x) with its scalar a; each
member answers with b(a(H(x))) and its own set blinded once, b(H(y)), shuffled; the asker re-blinds
the member's points with a and checks membership. The member never sees x (only a random-looking
point); the asker learns, per member, whether x is in the set and the set's size, never another
element. Fresh scalars per query keep queries unlinkable.
"""
from __future__ import annotations

import concurrent.futures
import secrets
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from privacy.errors import DuplicateContribution, MalformedMessage
from privacy.psi import Blinder, blind_many, normalize_identifier, points_from_hex, points_to_hex, shuffled


@dataclass
class MembershipQuery:
    query_id: str
    points: list[bytes]  # the asker's persons, blinded with a, in the asker's order

    def to_dict(self) -> dict:
        return {"kind": "fraud-membership-query", "query_id": self.query_id, "points": points_to_hex(self.points)}

    @classmethod
    def from_dict(cls, data: Any) -> "MembershipQuery":
        if not isinstance(data, dict) or data.get("kind") != "fraud-membership-query" or not isinstance(data.get("query_id"), str):
            raise MalformedMessage("expected a fraud-membership-query message")
        return cls(data["query_id"], points_from_hex(data.get("points"), "fraud-membership-query"))


@dataclass
class MembershipAnswer:
    query_id: str
    member: str
    double_blinded: list[bytes]  # same order as the query: the asker must map answers to its persons
    member_blinded: list[bytes]  # shuffled

    def to_dict(self) -> dict:
        return {
            "kind": "fraud-membership-answer",
            "query_id": self.query_id,
            "member": self.member,
            "double_blinded": points_to_hex(self.double_blinded),
            "member_blinded": points_to_hex(self.member_blinded),
        }

    @classmethod
    def from_dict(cls, data: Any) -> "MembershipAnswer":
        if not isinstance(data, dict) or data.get("kind") != "fraud-membership-answer" or not isinstance(data.get("member"), str):
            raise MalformedMessage("expected a fraud-membership-answer message")
        return cls(
            data.get("query_id"),
            data["member"],
            points_from_hex(data.get("double_blinded"), "fraud-membership-answer"),
            points_from_hex(data.get("member_blinded"), "fraud-membership-answer"),
        )


def answer_membership(
    query: MembershipQuery,
    member: str,
    member_set: Iterable[str | bytes],
    blinder: Blinder | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> MembershipAnswer:
    """A member's answer: the query points re-blinded (in order) and its own set blinded, shuffled."""
    blinder = blinder or Blinder()  # fresh per query: answers to two queries cannot be linked
    ids = list(dict.fromkeys(normalize_identifier(i) for i in member_set))
    return MembershipAnswer(
        query.query_id,
        member,
        blind_many(blinder, query.points, True, executor),
        shuffled(blind_many(blinder, ids, False, executor)),
    )


class FraudSignalQuery:
    """The asking member's side: persons to check, then a count of matching members per person."""

    def __init__(self, persons: Sequence[str | bytes], query_id: str | None = None, blinder: Blinder | None = None):
        self.persons = list(dict.fromkeys(normalize_identifier(p) for p in persons))
        self.query_id = query_id or secrets.token_hex(16)
        self.blinder = blinder or Blinder()

    def query(self) -> MembershipQuery:
        return MembershipQuery(self.query_id, self.blinder.blind_identifiers(self.persons))

    def count_matches(self, answers: Iterable[MembershipAnswer], executor: concurrent.futures.Executor | None = None) -> dict[str, int]:
        """Per person (decoded as str), in how many members' sets it appears. One answer per member."""
        counts = [0] * len(self.persons)
        seen: set[str] = set()
        for answer in answers:
            if answer.query_id != self.query_id:
                raise MalformedMessage("answer belongs to another query")
            if answer.member in seen:
                raise DuplicateContribution(f"two answers from {answer.member}")
            if len(answer.double_blinded) != len(self.persons):
                raise MalformedMessage("answer does not carry one point per queried person")
            seen.add(answer.member)
            member_points = set(blind_many(self.blinder, answer.member_blinded, True, executor))
            for i, p in enumerate(answer.double_blinded):
                counts[i] += p in member_points
        return {p.decode("utf-8", "replace"): c for p, c in zip(self.persons, counts)}
