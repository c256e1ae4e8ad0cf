"""The `consortium` CLI: the demo runs end to end; bad input is one clear line and a non-zero exit."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from node.chain.anvil import free_port

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "node.cli"]


def run(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_demo_runs_the_multi_node_scenario_and_reports_json():
    result = run("demo", "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(summary["nodes"]) == 4
    assert summary["newcomer_admitted"] is True and summary["members"] == 6
    assert summary["statistics_served"] is True and summary["statistics_match_plaintext"] is True
    assert summary["refused_after_revocation"] is True
    assert summary["fraud_list_entries"] == 15
    outcomes = [(q["from"], q["purpose"], q["outcome"]) for q in summary["queries"]]
    assert ("shop-platform", "PRICING", "wrong_purpose") in outcomes and ("insurer-west", "FRAUD", "no_grant") in outcomes
    # One job of each kind, each equal to the plaintext answer the demo computes from its own data.
    jobs = summary["joint_statistics"]
    assert set(jobs) == {"horizontal", "vertical", "fraud"}
    assert all(j["state"] == "PUBLISHED" and j["matches_plaintext"] for j in jobs.values()), jobs
    # Every served query and every job contribution is an access on chain (2 insurers in the horizontal job,
    # the platform in the vertical one, one fraud-list holder); every refusal a denial.
    contributions = 2 + 1 + 1
    assert summary["events_by_type"]["AccessRecorded"] == sum(q["outcome"] == "served" for q in summary["queries"]) + contributions
    assert summary["events_by_type"]["DenialRecorded"] == sum(q["status"] == 403 for q in summary["queries"])
    assert summary["events_by_type"]["AuthorizationRevoked"] == 1
    # Claim evidence: anchored, verified by the auditor from the chain, a tampered copy refused, lifecycle on chain.
    evidence = summary["evidence"]
    assert evidence["anchored"] and evidence["documents"] == 2 and evidence["auditor_valid"] is True
    assert evidence["tampered_rejected"] is True and evidence["tampered_reason"] == "tampered_document"
    assert evidence["claim_steps"] == ["REPORTED", "MATERIALS_COMPLETE", "ASSESSED", "APPROVED", "PAID"] and evidence["express"]
    # The regulator's index agrees with the chain and saw every access and denial.
    regulator = summary["regulator"]
    assert regulator["index_matches_chain"]["matches"] is True
    assert regulator["access_events"] == summary["events_by_type"]["AccessRecorded"]
    assert regulator["denial_events"] == summary["events_by_type"]["DenialRecorded"] == regulator["denials_listed"]
    # Settlement: 3 served uses under the certificate, metered from the chain, the statement equal to the formula
    # applied to them, confirmed, paid and received.
    s = summary["settlement"]
    assert ("insurer-east", "PRICING", "served") in outcomes
    assert s["served"] == s["access_records"] == s["metered_accesses"] == 3 and s["metered_rows"] == s["rows_recorded"]
    assert s["rows_recorded"] == 3 * summary["imported_rows"]["shop-platform/user_features"]  # a count reads every row
    p, f = s["prices"], s["formula"]
    expected = (p["period_fee"] + p["per_access_price"] * 3 + p["per_row_price"] * s["rows_recorded"]
                + s["premium"] * f["base_commission_bps"] // 10_000 + s["premium"] * f["data_value_share_bps"] // 10_000)
    assert s["amount"] == s["on_chain_total"] == expected and s["inputs_hash_matches"] is True
    assert (s["state"], s["payment"], s["certificate_valid"]) == ("SETTLED", "received", True)
    # Risk pool: the loss split 70:30 to the unit; mutual aid: 1,000 shares summing to the payout, one verified.
    pool, aid = summary["pools"]["pool"], summary["pools"]["mutual_aid"]
    assert pool["shared"] == pool["loss"] == sum(pool["shares"].values())
    for name, weight in zip(pool["members"], pool["weights"]):
        assert abs(pool["shares"][name] - pool["loss"] * weight / sum(pool["weights"])) < 1
    assert pool["payments"]["insurer-west"] == "CONFIRMED"
    # One claim, one payout: the pool's claim is refused by mutual aid, which apportions a second claim.
    assert summary["pools"]["double_payout"] == "ClaimPaidByOtherScheme" and aid["claim_id"] != summary["evidence"]["claim_id"]
    assert aid["participants"] == len(aid["weights"]) == 1000 and aid["shares_sum"] == aid["payout"] == 125_000
    assert aid["list_check"]["valid"] is True and aid["list_check"]["sum"] == str(aid["payout"])
    index = int(aid["participant"].split("-")[1])
    assert abs(aid["participant_share"] - aid["payout"] * aid["weights"][index] / sum(aid["weights"])) < 1
    assert aid["participant_valid"] is True and aid["tampered_refused"] is True
    assert all(summary["events_by_type"].get(e) == 1 for e in ("CertificateIssued", "StatementIssued", "PeriodSettled", "LossShared",
                                                               "ContributionConfirmed", "ApportionmentAnchored"))


def test_wrong_rpc_url_is_one_line():
    result = run("members", "--rpc", f"http://127.0.0.1:{free_port()}", "--deployment", "x.json")
    # The deployment file is checked first: it is missing too.
    assert_one_line_error(result, "deployment file", "does not exist")


def test_unreachable_rpc_with_valid_deployment_is_one_line(consortium, tmp_path):
    path = consortium.deployment.save(tmp_path / "deployment.json")
    result = run("members", "--rpc", f"http://127.0.0.1:{free_port()}", "--deployment", str(path))
    assert_one_line_error(result, "no Ethereum JSON-RPC node answers", "consortium chain up")
    with_debug = run("--debug", "members", "--rpc", f"http://127.0.0.1:{free_port()}", "--deployment", str(path))
    assert with_debug.returncode != 0 and "Traceback" in with_debug.stderr


def test_members_and_check_against_a_live_deployment(consortium, tmp_path):
    path = consortium.deployment.save(tmp_path / "deployment.json")
    result = run("members", "--rpc", consortium.gateway.rpc_url, "--deployment", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert [m["name"] for m in json.loads(result.stdout)][:2] == ["insurer_a", "insurer_b"]
    check = run("chain", "check", "--rpc", consortium.gateway.rpc_url, "--deployment", str(path), "--json")
    assert check.returncode == 0 and json.loads(check.stdout)["ok"] is True


def test_stale_deployment_is_one_line(consortium, tmp_path):
    data = json.loads(consortium.deployment.save(tmp_path / "d.json").read_text())
    data["contracts"] = {k: "0x" + "22" * 20 for k in data["contracts"]}
    (tmp_path / "stale.json").write_text(json.dumps(data))
    result = run("chain", "check", "--rpc", consortium.gateway.rpc_url, "--deployment", str(tmp_path / "stale.json"))
    assert_one_line_error(result, "stale deployment file", "deploy anew with `consortium chain up`")


def test_wrong_passphrase_is_one_line(tmp_path):
    env = {"CONSORTIUM_PASSPHRASE": "correct horse battery"}
    created = run("keys", "new", str(tmp_path / "k"), "--json", env=env)
    assert created.returncode == 0, created.stderr
    address = json.loads(created.stdout)["address"]
    shown = run("keys", "show", str(tmp_path / "k"), "--json", env=env)
    assert json.loads(shown.stdout)["address"] == address
    wrong = run("keys", "show", str(tmp_path / "k"), env={"CONSORTIUM_PASSPHRASE": "wrong wrong wrong"})
    assert_one_line_error(wrong, "wrong passphrase", "CONSORTIUM_PASSPHRASE")
    assert "wrong wrong wrong" not in wrong.stderr and "correct horse" not in wrong.stderr


def _copy_project_without(tmp_path: Path, missing: str) -> Path:
    """A copy of the project (sources only) whose node_modules lacks one tool."""
    root = tmp_path / "project"
    for name in ("contracts", "scripts", "node"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    modules = root / "node_modules"
    modules.mkdir()
    for entry in (ROOT / "node_modules").iterdir():
        if entry.name != missing:
            (modules / entry.name).symlink_to(entry)
    return root


def test_missing_anvil_is_one_line(tmp_path):
    root = _copy_project_without(tmp_path, "@foundry-rs")
    result = run("chain", "up", "--home", str(tmp_path / "home"),
                 env={"CONSORTIUM_PROJECT_ROOT": str(root), "CONSORTIUM_PASSPHRASE": "correct horse battery"})
    assert_one_line_error(result, "anvil is not installed", "scripts/setup.sh")


def test_missing_compiler_is_one_line(tmp_path):
    root = _copy_project_without(tmp_path, "solc")
    result = run("chain", "up", "--home", str(tmp_path / "home"),
                 env={"CONSORTIUM_PROJECT_ROOT": str(root), "CONSORTIUM_PASSPHRASE": "correct horse battery"})
    assert_one_line_error(result, "Solidity compiler", "scripts/setup.sh")


def test_chain_up_serves_a_deployment_until_interrupted(tmp_path):
    import signal

    env = {**os.environ, "CONSORTIUM_PASSPHRASE": "correct horse battery"}
    # Ctrl-C's disposition as on a terminal: a runner started in the background (`cmd &` in a script) hands its
    # children SIGINT ignored, and then the interrupt below would never arrive
    proc = subprocess.Popen([*CLI, "chain", "up", "--home", str(tmp_path / "home"), "--json"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        info = json.loads(proc.stdout.readline())
        check = run("chain", "check", "--rpc", info["rpc_url"], "--deployment", info["deployment"], "--json")
        assert check.returncode == 0, check.stderr
        assert len(info["members"]) == 5
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:  # never leave the chain (and its anvil) running after a failure
                proc.terminate()
                proc.wait(timeout=30)
    from node.chain.anvil import rpc_ready

    assert not rpc_ready(info["rpc_url"])  # anvil went down with it


# ---------------------------------------------------------------- your own consortium (issue 13)


def test_chain_up_refuses_a_bad_founder_in_one_line(tmp_path):
    for spec, fragment in (("acme", "is not NAME:ROLE"), ("acme:banker", "is not NAME:ROLE"), ("../x:insurer", "not allowed")):
        assert_one_line_error(run("chain", "up", "--home", str(tmp_path), "--member", spec), fragment)
    assert_one_line_error(run("chain", "up", "--home", str(tmp_path), "--member", "a:insurer", "--member", "A:platform"),
                          "given twice")


def test_member_names_resolve_in_one_place_and_refuse_unknown_or_ambiguous():
    from types import SimpleNamespace

    from node.members import MemberDirectory, UnknownMember

    a, b, c = ("0x" + d * 40 for d in "abc")
    directory = MemberDirectory([SimpleNamespace(name="acme", address=a.replace("0xa", "0xA")),
                                 SimpleNamespace(name="twin", address=b), SimpleNamespace(name="twin", address=c)])
    assert directory.resolve("acme").lower() == a and directory.resolve("ACME").lower() == a
    assert directory.resolve(b).lower() == b  # an address passes through, member or not
    assert directory.name_of(a) == "acme" and directory.name_of("0x" + "d" * 40) == "0x" + "d" * 40
    with pytest.raises(UnknownMember, match="neither an address nor a member name"):
        directory.resolve("nobody")
    with pytest.raises(UnknownMember, match="ambiguous") as err:
        directory.resolve("twin")
    assert err.value.reason == "ambiguous_member"


def test_reverts_print_enums_by_name():
    from node.chain.errors import ContractRevert

    text = str(ContractRevert("InvalidClaimStep", {"claimIdHash": b"\x01" * 32, "from": 6, "to": 1}))
    assert "from=PAID" in text and "to=REPORTED" in text


def test_failed_job_hint_names_only_a_rerun_that_will_be_accepted():
    from node.cli.stats import rerun_hint

    job = {"id": "j1", "kind": "horizontal", "participants": ["0xa", "0xb", "0xc"], "error": {"missing": ["0xc"]}}
    assert "consortium stats rerun j1" in rerun_hint(job)
    job["participants"] = ["0xa", "0xc"]  # one would remain: the node refuses such a rerun
    assert "stats rerun" not in rerun_hint(job) and "stats run SPEC.toml" in rerun_hint(job)
    assert rerun_hint({**job, "error": {"missing": []}}) is None


def test_no_hint_names_a_command_that_does_not_exist(tmp_path):
    result = run("members", "--rpc", "http://127.0.0.1:1", "--deployment", str(tmp_path / "none.json"))
    assert_one_line_error(result, "does not exist", "consortium chain up")
    assert "chain deploy" not in result.stderr


def test_starting_a_node_twice_is_one_line_before_anything_starts(tmp_path):
    import socket

    from node.network.devnet import write_node_config

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = write_node_config(tmp_path, "acme", tmp_path / "keys", "http://127.0.0.1:1", tmp_path / "d.json",
                                   taken.getsockname()[1])
        result = run("node", "start", "--config", str(config))
    assert_one_line_error(result, "already in use", "already running")
    assert "started" not in result.stdout + result.stderr


def test_readme_dataset_table_and_document_types_match_the_code():
    from node.evidence.leaf import DocType
    from node.store.datasets import SCHEMAS

    readme = (ROOT / "README.md").read_text()
    for s in SCHEMAS.values():
        cols = ", ".join(f"{f.name} {f.kind}{'' if f.required else '*'}" for f in s.fields)
        assert f"| `{s.name}` | `{s.key}` | {cols} |" in readme, s.name
    for t in DocType:
        assert f"`{t.label}` ({int(t)})" in readme
    assert run("data", "schema", "claims", "--json").returncode == 0


def test_ready_is_not_ready_with_the_reason_when_the_key_could_not_be_registered():
    import threading
    from types import SimpleNamespace

    from node.api.health import not_ready_reason

    def ctx(key_ready=True, key_error=None, log_error=None, evidence_error=None, retrying=False):
        event = threading.Event()
        if key_ready:
            event.set()
        return SimpleNamespace(stats=SimpleNamespace(key_ready=event, key_error=key_error, key_retrying=retrying),
                               access_log=SimpleNamespace(last_error=log_error),
                               evidence=SimpleNamespace(last_error=evidence_error))

    assert not_ready_reason(ctx()) is None
    reason, message = not_ready_reason(ctx(False, "ChainError: insufficient funds for gas", retrying=True))
    assert reason == "key_not_registered" and "insufficient funds" in message and "retries by itself" in message
    assert "gov vote --fund-ether" in message and "consortium chain fund" in message
    reason, message = not_ready_reason(ctx(False, "KeyStoreError: wrong passphrase"))
    assert reason == "key_not_ready" and "restart" in message
    assert not_ready_reason(ctx(False))[0] == "starting"
    assert not_ready_reason(ctx(log_error="nonce too low"))[0] == "access_log_failing"
    assert not_ready_reason(ctx(evidence_error="timeout"))[0] == "evidence_anchoring_failing"


def test_admitting_vote_funds_the_newcomer_whose_running_node_then_becomes_ready_without_restart(anvil, artifacts, tmp_path):
    """The candidate's node is started before it is even a member: it cannot register its keys (not a
    member, no gas) and says so on /ready, retrying. The vote that admits it also funds it from the
    voter's account; the same node process then registers its keys and is ready."""
    import time

    import httpx
    from eth_account import Account
    from nodes import TEST_PASSPHRASE, start_node, write_config

    from node.chain.deployment import GenesisMember, Role, deploy_consortium
    from node.chain.gateway import ChainGateway
    from node.keys import create_member_keys

    gateway = ChainGateway.connect(anvil.url, artifacts)
    keys = {n: create_member_keys(tmp_path / "keys" / n, TEST_PASSPHRASE, scrypt_n=2**10) for n in ("acme", "bolt", "dove")}
    deployer = Account.create()
    for account in (deployer, keys["acme"].account, keys["bolt"].account):
        gateway.fund(account.address)
    deployment = deploy_consortium(gateway, deployer, [GenesisMember(keys[n].address, n, Role.INSURER) for n in ("acme", "bolt")])
    dep = deployment.save(tmp_path / "deployment.json")
    configs = {n: write_config(tmp_path / n, n, tmp_path / "keys" / n, anvil.url, dep, free_port()) for n in ("acme", "bolt")}
    dove = start_node(tmp_path / "dove", "dove", tmp_path / "keys" / "dove", anvil.url, dep)
    try:
        def ready() -> tuple[int, str | None]:
            r = httpx.get(dove.url + "/ready", timeout=5)
            return r.status_code, (r.json().get("detail") or {}).get("reason")

        deadline = time.monotonic() + 60
        while ready() == (503, "starting") and time.monotonic() < deadline:
            time.sleep(0.3)
        assert ready() == (503, "key_not_registered")
        env = {"CONSORTIUM_PASSPHRASE": TEST_PASSPHRASE}
        proposed = run("gov", "propose", "--candidate", str(tmp_path / "keys" / "dove"), "--name", "dove", "--role", "INSURER",
                       "--endpoint", dove.url, "--config", str(configs["acme"]), env=env)
        assert proposed.returncode == 0, proposed.stderr
        assert "0 of 2 votes needed (2 members not expelled" in proposed.stdout and "2 more" in proposed.stdout
        first = run("gov", "vote", "1", "--config", str(configs["acme"]), env=env)
        assert first.returncode == 0 and "1 of 2 votes needed" in first.stdout and "1 more" in first.stdout, first.stdout
        assert gateway.w3.eth.get_balance(keys["dove"].address) == 0
        bolt_before = gateway.w3.eth.get_balance(keys["bolt"].address)
        second = run("gov", "vote", "1", "--config", str(configs["bolt"]), "--json", env=env)
        assert second.returncode == 0, second.stderr
        tally = json.loads(second.stdout)
        assert tally["admitted"] and tally["funding"]["ether"] == 1.0 and tally["funding"]["from"] == keys["bolt"].address
        assert tally["funding"]["tx_hash"].startswith("0x")
        # the transfer itself, not dove's balance: its running node may already have spent some of it on its key
        funding = gateway.w3.eth.get_transaction(tally["funding"]["tx_hash"])
        assert (funding["to"], funding["value"]) == (keys["dove"].address, 10**18)
        assert gateway.w3.eth.get_transaction_receipt(tally["funding"]["tx_hash"])["status"] == 1
        assert bolt_before - gateway.w3.eth.get_balance(keys["bolt"].address) >= 10**18
        deadline = time.monotonic() + 60  # backoff tops out at 15 s between attempts
        while ready()[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert ready() == (200, None)
        assert dove.process.poll() is None  # the same process: no restart
        log = (tmp_path / "dove" / "node.log").read_text()
        assert "retrying in" in log and "registered X25519 key" in log
    finally:
        dove.stop()


def test_every_command_a_message_names_exists():
    """Hints and messages across node/ name commands as `consortium GROUP COMMAND`: each must parse."""
    import argparse
    import re

    from node.cli.main import build_parser

    def commands(parser: argparse.ArgumentParser, prefix: tuple = ()) -> dict:
        found = {}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found[prefix + (name,)] = sub
                    found.update(commands(sub, prefix + (name,)))
        return found

    known = commands(build_parser())
    named = set()
    for path in (ROOT / "node").rglob("*.py"):
        # a command and its subcommand, up to the closing backtick or the first argument
        for match in re.finditer(r"`consortium ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?(?=[` ])", path.read_text()):
            if match.group(0).endswith("`consortium " + match.group(1)):  # the group alone, as a name (`consortium audit`)
                continue
            named.add((path.name, tuple(w for w in match.groups() if w)))
    assert len(named) > 20
    for source, words in sorted(named):
        group = words[:1]
        assert group in known, f"{source} names `consortium {' '.join(words)}`, which does not exist"
        has_subcommands = any(len(k) == 2 and k[0] == group[0] for k in known)
        if has_subcommands:
            assert len(words) == 2 and words in known, f"{source} names `consortium {' '.join(words)}`, which does not exist"


def test_step_progress_shows_each_step_on_a_terminal_and_nothing_when_piped():
    import io

    from rich.console import Console

    from node.console import step_progress

    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)
    with step_progress(terminal, "network up") as progress:
        progress("starting anvil")
        progress("deploying ConsortiumRegistry")
    shown = terminal.file.getvalue()
    assert "network up: starting anvil" in shown and "network up: deploying ConsortiumRegistry" in shown
    assert shown.count("✓") >= 2  # both steps end ticked
    piped = Console(file=io.StringIO(), force_terminal=False)
    with step_progress(piped, "network up") as progress:
        progress("starting anvil")
    assert piped.file.getvalue() == ""
