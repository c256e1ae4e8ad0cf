"""Shared fixtures: one real anvil per test session, a fresh consortium deployment per test."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from node.chain.anvil import AnvilNode
from node.chain.compiler import compile_contracts
from node.chain.deployment import Deployment, GenesisMember, Role, deploy_consortium
from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger


@pytest.fixture(scope="session")
def artifacts():
    return compile_contracts()


@pytest.fixture(scope="session")
def anvil():
    with AnvilNode() as node:
        yield node


@dataclass
class Consortium:
    gateway: ChainGateway
    deployment: Deployment
    accounts: dict[str, LocalAccount]
    ledgers: dict[str, Ledger]

    def __getitem__(self, name: str) -> Ledger:
        return self.ledgers[name]

    def now(self) -> int:
        """The chain's clock: the timestamp of the latest block."""
        return self.gateway.w3.eth.get_block("latest")["timestamp"]

    def advance(self, seconds: int) -> None:
        """Move the chain's clock forward and mine a block (anvil only)."""
        self.gateway.w3.provider.make_request("evm_increaseTime", [seconds])
        self.gateway.w3.provider.make_request("evm_mine", [])


GENESIS = [("insurer_a", Role.INSURER), ("insurer_b", Role.INSURER), ("platform", Role.PLATFORM),
           ("regulator", Role.REGULATOR), ("auditor", Role.AUDITOR)]


def build_consortium(gateway: ChainGateway) -> Consortium:
    accounts = {name: Account.create() for name, _ in GENESIS}
    accounts["outsider"] = Account.create()
    accounts["candidate"] = Account.create()
    deployer = Account.create()
    for acct in [deployer, *accounts.values()]:
        gateway.fund(acct.address)
    genesis = [GenesisMember(accounts[name].address, name, role, endpoint=f"http://127.0.0.1/{name}") for name, role in GENESIS]
    deployment = deploy_consortium(gateway, deployer, genesis)
    ledgers = {name: Ledger(gateway, acct) for name, acct in accounts.items()}
    return Consortium(gateway, deployment, accounts, ledgers)


@pytest.fixture
def consortium(anvil, artifacts) -> Consortium:
    """A fresh deployment on the session's anvil with five genesis members, an outsider and a candidate."""
    return build_consortium(ChainGateway.connect(anvil.url, artifacts))


FOLDER_MARKERS = ("privacy", "contracts", "node", "system", "browser")


def pytest_collection_modifyitems(config, items):
    """Mark each test by its folder under tests/ (registered in pyproject.toml), so `-m "not system and not browser"`
    selects the fast subset without a marker on every file."""
    here = Path(__file__).resolve().parent
    for item in items:
        try:
            folder = item.path.resolve().relative_to(here).parts[0]
        except ValueError:
            continue
        if folder in FOLDER_MARKERS:
            item.add_marker(folder)
