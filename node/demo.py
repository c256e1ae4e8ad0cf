"""`consortium demo`: the consortium's main flows end to end on a real local chain.

For now (the ledger milestone): start anvil, deploy, admit a member by vote, grant, check, record
an access, revoke, record the denial that follows, give a yellow card, and print the chain's events.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.table import Table
from web3 import Web3

from node.chain.deployment import Purpose, Role, Status
from node.chain.events import ChainEvent, EventReader
from node.chain.reasons import DenialReason
from node.chain.ledger import dataset_id
from node.devnet import dev_passphrase, start_dev_consortium
from node.keys import create_member_keys


def _short(value: Any, names: dict[str, str]) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()[:10] + "…"
    if isinstance(value, str) and Web3.is_address(value):
        return names.get(value.lower(), value[:10] + "…")
    return str(value)


def _describe(event: ChainEvent, names: dict[str, str]) -> str:
    skip = {"scopeHash", "consentRef", "metadataHash", "reasonHash"}
    parts = []
    for key, value in event.args.items():
        if key in skip:
            continue
        if key == "purpose":
            value = Purpose(value).name
        elif key == "reasonCode":
            value = DenialReason(value).name
        elif key == "role":
            value = Role(value).name
        elif key == "status":
            value = Status(value).name
        parts.append(f"{key}={_short(value, names)}")
    return " ".join(parts)


def run_demo(home: Path | None = None, *, as_json: bool = False, console: Console | None = None) -> dict:
    console = console or Console(stderr=as_json)
    started = time.monotonic()
    owned_tmp = None
    if home is None:
        owned_tmp = tempfile.TemporaryDirectory(prefix="consortium-demo-")
        home = Path(owned_tmp.name)
    steps: list[dict] = []

    def step(title: str, action: Callable[[], Any]) -> Any:
        t0 = time.monotonic()
        with console.status(title):
            result = action()
        ms = (time.monotonic() - t0) * 1000
        console.print(f"[green]✓[/green] {title} [dim]({ms:.0f} ms)[/dim]")
        steps.append({"step": title, "ms": round(ms, 1)})
        return result

    dev = step("Start a local anvil chain, create encrypted member keys, deploy the four contracts",
               lambda: start_dev_consortium(home))
    try:
        names = {k.address.lower(): n for n, k in dev.keys.items()}
        insurer, insurer_b, platform, regulator = (dev.ledgers[n] for n in ("ping-an-demo", "zhong-an-demo", "shop-platform", "regulator"))
        claims = dataset_id("claims-2026")
        now = dev.gateway.w3.eth.get_block("latest")["timestamp"]

        newcomer = step("Create keys for a technology firm applying to join",
                        lambda: create_member_keys(home / "members" / "risk-model-lab", dev_passphrase(home)))
        names[newcomer.address.lower()] = "risk-model-lab"
        dev.gateway.fund(newcomer.address)
        proposal = step("Propose the technology firm for admission",
                        lambda: insurer.propose_member(newcomer.address, "risk-model-lab", Role.TECH, "", newcomer.x25519_public))
        admitted = False
        for voter in ("ping-an-demo", "zhong-an-demo", "shop-platform", "regulator", "auditor"):
            if admitted:
                break
            admitted = step(f"{voter} votes for admission", lambda v=voter: dev.ledgers[v].vote(proposal))
        consent = hashlib.sha256(b"consent batch 2026-11 of ping-an-demo policyholders").digest()
        grant_id = step("ping-an-demo grants shop-platform STATISTICS use of claims-2026 for 30 days",
                        lambda: insurer.grant(platform.address, claims, Purpose.STATISTICS, expires_at=now + 30 * 86400,
                                              scope_hash=hashlib.sha256(b"columns: amount, age_band").digest(), consent_ref=consent))
        allowed = step("Check the authorization on chain",
                       lambda: insurer.is_authorized(insurer.address, platform.address, claims, Purpose.STATISTICS))
        query = hashlib.sha256(b"SELECT age_band, count(*), sum(amount) FROM claims GROUP BY age_band").digest()
        step("Record the access on chain", lambda: insurer.record_access(grant_id, query, 1250))
        wrong_purpose = step("Check a PRICING use of the same data (never granted)",
                             lambda: insurer.is_authorized(insurer.address, platform.address, claims, Purpose.PRICING))
        step("Record that refusal on chain",
             lambda: insurer.record_denial(platform.address, claims, Purpose.PRICING, DenialReason.WRONG_PURPOSE, query))
        step("ping-an-demo revokes the grant", lambda: insurer.revoke(grant_id))
        after_revoke = step("Check the authorization again",
                            lambda: insurer.is_authorized(insurer.address, platform.address, claims, Purpose.STATISTICS))
        step("Record the refused request after revocation",
             lambda: insurer.record_denial(platform.address, claims, Purpose.STATISTICS, DenialReason.REVOKED, query))
        step("The regulator gives zhong-an-demo a yellow card",
             lambda: regulator.warn(insurer_b.address, hashlib.sha256(b"late breach report").digest()))

        events = EventReader(dev.gateway).read(dev.deployment.deployment_block)
        table = Table(title="Consortium events on chain")
        for col in ("block", "contract", "event", "details"):
            table.add_column(col, overflow="fold")
        for e in events:
            table.add_row(str(e.block_number), e.contract, e.event, _describe(e, names))
        summary = {
            "rpc_url": dev.gateway.rpc_url,
            "chain_id": dev.deployment.chain_id,
            "contracts": dev.deployment.contracts,
            "members": len(dev.ledgers[next(iter(dev.ledgers))].members()),
            "newcomer_admitted": bool(admitted),
            "authorized_before_revoke": bool(allowed),
            "authorized_for_other_purpose": bool(wrong_purpose),
            "authorized_after_revoke": bool(after_revoke),
            "events": len(events),
            "events_by_type": {},
            "seconds": round(time.monotonic() - started, 2),
            "steps": steps,
        }
        for e in events:
            summary["events_by_type"][e.event] = summary["events_by_type"].get(e.event, 0) + 1
        if as_json:
            print(json.dumps(summary))
        else:
            console.print(table)
            result = Table(title="Demo summary")
            result.add_column("check")
            result.add_column("result", justify="right")
            result.add_row("members after admission vote", str(summary["members"]))
            result.add_row("authorized (STATISTICS) before revocation", str(allowed))
            result.add_row("authorized for PRICING (never granted)", str(wrong_purpose))
            result.add_row("authorized after revocation", str(after_revoke))
            result.add_row("events on chain", str(len(events)))
            result.add_row("wall time", f"{summary['seconds']} s")
            console.print(result)
        return summary
    finally:
        dev.stop()
        if owned_tmp is not None:
            owned_tmp.cleanup()
