"""A regulator's card carries the same reason hash on chain whether it was given through the API, the
regulator's page or the CLI (one function, node/chain/ledger.py ``card_reason_hash``)."""
from __future__ import annotations

import asyncio
import hashlib
from argparse import Namespace
from types import SimpleNamespace

import pytest

from node.chain.deployment import Role, Status
from node.chain.ledger import MemberRecord
from node.enums import ZERO32

MEMBER = "0x" + "ab" * 20


class RecordingLedger:
    """Stands in for the regulator's ledger: records what each card would send on chain."""

    def __init__(self):
        self.sent: list[tuple[str, str, bytes]] = []

    def members(self):
        return [MemberRecord(_checksum(MEMBER), "insurer_b", Role.INSURER, Status.ACTIVE, "", ZERO32, ZERO32, 0)]

    def warn(self, member, reason_hash):
        self.sent.append(("warn", member, reason_hash))

    def suspend(self, member, reason_hash):
        self.sent.append(("suspend", member, reason_hash))


def _checksum(address: str) -> str:
    from web3 import Web3

    return Web3.to_checksum_address(address)


def _from_api(reason: str) -> bytes:
    from node.api.governance import Card, card

    ledger = RecordingLedger()
    asyncio.run(card(MEMBER, "warn", Card(reason=reason), None, SimpleNamespace(ledger=ledger)))
    (_, _, sent), = ledger.sent
    return sent


def _from_page(reason: str) -> bytes:
    from node.api.pages import card

    ledger = RecordingLedger()
    service = SimpleNamespace(web=SimpleNamespace(check_csrf=lambda sid, token: True), ledger=ledger,
                              forget_members=lambda: None)
    response = card(MEMBER, "warn", csrf="token", reason=reason, session=SimpleNamespace(service=service, sid="s"))
    assert response.status_code == 303 and "done=warned" in response.headers["location"]
    (_, _, sent), = ledger.sent
    return sent


def _from_cli(reason: str, monkeypatch) -> bytes:
    from node.cli import governance

    ledger = RecordingLedger()
    monkeypatch.setattr(governance, "_ledger", lambda args: ledger)
    governance._gov(Namespace(gov_command="warn", member="insurer_b", reason=reason, json=True, config=None))
    (_, _, sent), = ledger.sent
    return sent


@pytest.mark.parametrize("reason", ["late breach report", "Meldung verspätet: 3 Tage", ""])
def test_the_same_card_reason_gives_the_same_hash_from_the_api_the_page_and_the_cli(reason, monkeypatch, capsys):
    api, page, cli = _from_api(reason), _from_page(reason), _from_cli(reason, monkeypatch)
    expected = hashlib.sha256(reason.encode()).digest() if reason else ZERO32
    assert api == page == cli == expected


def test_different_reasons_give_different_hashes(monkeypatch, capsys):
    assert _from_cli("late report", monkeypatch) != _from_cli("late  report", monkeypatch)
