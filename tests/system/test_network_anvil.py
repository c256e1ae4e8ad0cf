"""`consortium network init/up/down/status` on the local anvil engine (node/network/anvil.py).

The walkthrough (tests/system/test_own_consortium.py) runs the nodes on such a network; this file checks the
folder itself: keys, genesis set, endpoints, node configs, funding, the deployment kept across down/up,
and the one-line refusals.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tomllib

from nodes import ROOT

from node.chain.anvil import free_port


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**{k: v for k, v in os.environ.items() if k != "CONSORTIUM_PASSPHRASE"}, **(env or {})})


def one_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_network_init_up_down_up_from_a_members_file(tmp_path):
    from web3 import Web3

    from node.chain.deployment import Deployment
    from node.chain.gateway import ChainGateway
    from node.members import read_members

    node_port = free_port()
    (tmp_path / "members.toml").write_text(f'''
[[member]]
name = "acme-insurance"
role = "insurer"
endpoint = "http://127.0.0.1:{node_port}"

[[member]]
name = "cartwheel"
role = "PLATFORM"
''')
    net = tmp_path / "net"
    env = {"CONSORTIUM_PASSPHRASE_FILE": str(net / "passphrase")}
    init = cli("network", "init", str(net), "--members-file", str(tmp_path / "members.toml"), "--json", env=env)
    assert init.returncode == 0, init.stderr
    spec = json.loads(init.stdout)
    assert spec["engine"] == "anvil" and spec["gas"] == "funded"
    assert [(m["name"], m["role"]) for m in spec["members"]] == [("acme-insurance", "INSURER"), ("cartwheel", "PLATFORM")]
    acme, cartwheel = spec["members"]
    assert acme["endpoint"] == f"http://127.0.0.1:{node_port}" and cartwheel["endpoint"].startswith("http://127.0.0.1:")
    config = tomllib.loads((net / "nodes" / "acme-insurance" / "node.toml").read_text())
    assert config["port"] == node_port and config["rpc_url"] == spec["rpc_url"]
    assert config["deployment"] == str((net / "deployment.json").resolve()) and config["name"] == "acme-insurance"
    for path in (net / "passphrase", net / "members" / "cartwheel" / "account.json", net / "members" / "cartwheel" / "x25519.pem"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert json.loads((net / "members" / "cartwheel" / "account.json").read_text())["crypto"]["kdf"] == "scrypt"

    one_line(cli("network", "init", str(net), "--member", "x:insurer", env=env), "already holds a network")
    one_line(cli("network", "init", str(tmp_path / "n2"), "--member", "x:broker", env=env), "is not NAME:ROLE", "roles are")
    one_line(cli("network", "init", str(tmp_path / "n3"), env=env), "no founding members")
    one_line(cli("network", "up", str(tmp_path / "nowhere"), env=env), "not a network folder")

    try:
        up = cli("network", "up", str(net), "--json", env=env)
        assert up.returncode == 0, up.stderr
        info = json.loads(up.stdout)
        assert info == json.loads((net / "chain.json").read_text())  # `chain info --home net` reads it
        assert cli("chain", "info", "--home", str(net), "--get", "rpc_url").stdout.strip() == spec["rpc_url"]
        deployment = Deployment.load(net / "deployment.json")
        gateway = ChainGateway.connect(spec["rpc_url"])
        from node.chain.deployment import attach

        attach(gateway, deployment)
        on_chain = {m.name: (m.address, m.role.name, m.endpoint) for m in read_members(gateway)}
        assert on_chain == {m["name"]: (m["address"], m["role"], m["endpoint"]) for m in spec["members"]}
        for m in spec["members"]:  # funded: 100 ether each
            assert gateway.w3.eth.get_balance(m["address"]) == Web3.to_wei(100, "ether")
        status = json.loads(cli("network", "status", str(net), "--json").stdout)
        assert status["running"] and status["block"] >= 1
        one_line(cli("network", "up", str(net), env=env), "already up")

        assert json.loads(cli("network", "down", str(net), "--json").stdout) == {"stopped": True}
        assert not (net / "chain.json").exists()
        assert json.loads(cli("network", "status", str(net), "--json").stdout)["running"] is False
        block = status["block"]
        again = cli("network", "up", str(net), "--json", env=env)  # the saved chain state: same contracts, not redeployed
        assert again.returncode == 0, again.stderr
        assert Deployment.load(net / "deployment.json").contracts == deployment.contracts
        gateway = ChainGateway.connect(spec["rpc_url"])
        assert gateway.block_number() >= block
        assert gateway.w3.eth.get_code(deployment.contracts["ConsortiumRegistry"])
    finally:
        cli("network", "down", str(net))
    assert not (net / "run.json").exists()
