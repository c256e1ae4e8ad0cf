"""A consortium on the session's anvil with a real regulator node process (and optionally a member node)."""
from __future__ import annotations

import os
import time

from eth_account import Account
from nodes import TEST_PASSPHRASE, start_node

from node.chain.deployment import GenesisMember, Role, deploy_consortium
from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger
from node.client import NodeClient
from node.keys import create_member_keys

ROLES = {"insurer_a": Role.INSURER, "insurer_b": Role.INSURER, "platform": Role.PLATFORM, "regulator": Role.REGULATOR,
         "auditor": Role.AUDITOR}


class AuditNetwork:
    def __init__(self, anvil, artifacts, base, node_names=("regulator",)):
        self.base = base
        self.gateway = ChainGateway.connect(anvil.url, artifacts)
        self.keys = {n: create_member_keys(base / "keys" / n, TEST_PASSPHRASE, scrypt_n=2**10) for n in ROLES}
        self.outsider = Account.create()
        deployer = Account.create()
        for account in [deployer, self.outsider, *(k.account for k in self.keys.values())]:
            self.gateway.fund(account.address)
        self.deployment = deploy_consortium(self.gateway, deployer,
                                            [GenesisMember(self.keys[n].address, n, r) for n, r in ROLES.items()])
        self.deployment_path = self.deployment.save(base / "deployment.json")
        self.ledgers = {n: Ledger(self.gateway, k.account) for n, k in self.keys.items()}
        self.nodes = {}
        previous = os.environ.get("CONSORTIUM_AUDIT_POLL_SECONDS")
        os.environ["CONSORTIUM_AUDIT_POLL_SECONDS"] = "0.2"
        try:
            for name in node_names:
                self.nodes[name] = start_node(base / name, name, base / "keys" / name, anvil.url, self.deployment_path)
        finally:
            if previous is None:
                os.environ.pop("CONSORTIUM_AUDIT_POLL_SECONDS", None)
            else:
                os.environ["CONSORTIUM_AUDIT_POLL_SECONDS"] = previous

    def address(self, name: str) -> str:
        return self.outsider.address if name == "outsider" else self.keys[name].address

    def now(self) -> int:
        return self.gateway.w3.eth.get_block("latest")["timestamp"]

    def client(self, who: str, node: str = "regulator") -> NodeClient:
        account = self.outsider if who == "outsider" else self.keys[who].account
        return NodeClient(self.nodes[node].url, account, self.keys[node].address, self.gateway.chain_id)

    def wait_indexed(self, node: str = "regulator", timeout: float = 20.0) -> int:
        """Wait until the node's index reflects the chain's head; returns that height."""
        head = self.gateway.block_number()
        client = self.client(node, node)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = client.request("GET", "/audit/status")
            if r.status_code == 200 and r.json()["indexed_block"] >= head:
                return r.json()["indexed_block"]
            time.sleep(0.1)
        raise AssertionError(f"index did not reach block {head}: {r.status_code} {r.text}")

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
