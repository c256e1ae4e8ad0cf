"""The README's "Your own consortium" walkthrough, run as written.

The `sh` blocks of that section are extracted from README.md and run in one bash session, every
command a real `consortium` subprocess, in an empty folder with data files this test generates (the
only change: the new member's port 8711 becomes a free one). Each result is then checked against a
plain computation over the same data. So the walkthrough cannot drift from what works.
"""
from __future__ import annotations

import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from node.chain.anvil import free_port

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Your own consortium"


def walkthrough_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end if end != -1 else None]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


AGE_BANDS = ["18-29", "30-39", "40-49", "50-59", "60+"]
FRAUD_LISTED = ["Q-0003", "Q-0007", "Q-0020", "P-0001", "X-0001"]


def _csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _claims(rng: random.Random, prefix: str, n: int, persons: int, person_prefix: str) -> list[dict]:
    return [{"claim_id": f"{prefix}-{i:04d}", "person_id": f"{person_prefix}-{i % persons:04d}",
             "amount": round(rng.uniform(50, 9000), 2),
             "claim_date": f"2026-{rng.randint(1, 9):02d}-{rng.randint(1, 28):02d}",
             "status": rng.choice(["paid", "paid", "rejected", "open"]), "region": rng.choice(["north", "south", "east"])}
            for i in range(n)]


def write_data(folder: Path, rng: random.Random) -> dict:
    """Each member's files; enough persons that every bucket clears the owners' minimum cohort (10)."""
    world = {"bolt_claims": _claims(rng, "C", 300, 150, "P"), "acme_claims": _claims(rng, "A", 200, 100, "Q")}
    world["bolt_policies"] = [{"policy_id": f"POL-{i:04d}", "person_id": f"P-{i:04d}", "product": "health",
                               "premium": round(rng.uniform(100, 900), 2), "start_date": "2026-01-01",
                               "region": rng.choice(["north", "south", "east"])} for i in range(150)]
    world["cartwheel_users"] = [{"person_id": f"P-{i:04d}", "age_band": rng.choice(AGE_BANDS),
                                 "channel": rng.choice(["app", "web", "mini-program"]),
                                 "activity_segment": rng.choice(["low", "mid", "high"])} for i in range(20, 200)]
    world["acme_fraud"] = [{"person_id": p, "listed_on": "2026-06-01", "reason": "staged accident"} for p in FRAUD_LISTED]
    for name, key in (("bolt-claims", "bolt_claims"), ("acme-claims", "acme_claims"), ("bolt-policies", "bolt_policies"),
                      ("cartwheel-users", "cartwheel_users"), ("acme-fraud", "acme_fraud")):
        _csv(folder / f"{name}.csv", world[key])
    for name, persons in (("bolt", [f"P-{i:04d}" for i in range(150)]), ("acme", [f"Q-{i:04d}" for i in range(100)]),
                          ("cartwheel", [u["person_id"] for u in world["cartwheel_users"]])):
        consents = [{"subject": p, "scope": "claims statistics", "at": "2026-11"} for p in persons]
        (folder / f"{name}-consents.json").write_text(json.dumps(consents))
    (folder / "invoice-0001.pdf").write_bytes(b"%PDF-1.4\n" + rng.randbytes(3000))
    return world


def json_lines(out: str, key: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and f'"{key}"' in line]


def check_statistics(out: str, world: dict) -> None:
    """Each job's published result equals the plain computation over the members' files."""
    jobs = {job["kind"]: job for job in json_lines(out, "kind") if "result" in job}
    assert set(jobs) == {"horizontal", "vertical", "fraud"}, out[-3000:]
    for job in jobs.values():
        assert job["state"] == "PUBLISHED", job.get("error")

    # horizontal: count and sum of paid claims per region over both insurers
    plain, persons = defaultdict(lambda: [0, 0.0]), defaultdict(set)
    for owner in ("acme_claims", "bolt_claims"):
        for c in world[owner]:
            if c["status"] == "paid":
                plain[c["region"]][0] += 1
                plain[c["region"]][1] += c["amount"]
                persons[(owner, c["region"])].add(c["person_id"])
    assert min(len(p) for p in persons.values()) >= 10  # so no owner suppresses a region
    got = jobs["horizontal"]["result"]["buckets"]
    assert set(jobs["horizontal"]["result"].get("suppressed") or []) <= {"(other)"}  # only the empty overflow bucket
    assert {b: v["count"] for b, v in got.items() if v.get("count")} == {r: n for r, (n, _) in plain.items()}
    for region, (_, total) in plain.items():
        assert round(got[region]["sum"], 2) == round(total, 2), (region, got[region], total)

    # vertical: bolt-mutual's persons (policyholders and claimants) matched with cartwheel's users, by age band
    amounts = defaultdict(float)
    for c in world["bolt_claims"]:
        amounts[c["person_id"]] += c["amount"]
    population = {p["person_id"] for p in world["bolt_policies"]} | set(amounts)
    expected = defaultdict(lambda: [0, 0, 0.0])
    for u in world["cartwheel_users"]:
        if u["person_id"] in population:
            e = expected[u["age_band"]]
            e[0] += 1
            e[1] += u["person_id"] in amounts
            e[2] += amounts.get(u["person_id"], 0.0)
    assert min(n for n, _, _ in expected.values()) >= 10
    got = jobs["vertical"]["result"]["buckets"]
    assert set(jobs["vertical"]["result"].get("suppressed") or []) <= {"(other)"}
    assert {b: (v["persons"], v["claimants"]) for b, v in got.items() if v.get("persons")} == \
        {b: (n, m) for b, (n, m, _) in expected.items()}
    for band, (_, _, total) in expected.items():
        assert round(got[band]["claim_amount"], 2) == round(total, 2), (band, got[band], total)

    # fraud: how many members list each asked person (only acme-insurance was asked)
    asked = ["Q-0003", "Q-0007", "Q-0011", "Q-0050", "P-0001", "Z-9999"]
    assert jobs["fraud"]["result"]["persons"] == {p: int(p in FRAUD_LISTED) for p in asked}


def stop_chain(folder: Path) -> None:
    run_file = folder / "net" / "run.json"
    if run_file.exists():
        try:
            os.kill(json.loads(run_file.read_text())["anvil_pid"], signal.SIGKILL)
        except (ProcessLookupError, KeyError, ValueError):
            pass


@pytest.mark.timeout(1500)  # about 40 CLI processes and five nodes: minutes on a loaded 2-core machine
def test_readme_walkthrough_own_members_own_data(tmp_path):
    blocks = walkthrough_blocks()
    assert len(blocks) == 8, "the walkthrough's eight steps"
    world = write_data(tmp_path, random.Random(13))
    port = free_port()
    script = "set -e -o pipefail\n" + "\n".join(blocks).replace("8711", str(port))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("CONSORTIUM_PASSPHRASE", None)
    started = time.monotonic()
    # A new session: the chain and the nodes the walkthrough leaves running in the background are this
    # process group, stopped together at the end.
    # Output goes to files: the background processes keep their copies open, so a pipe would never end.
    with open(tmp_path / "out.txt", "w") as out_file, open(tmp_path / "err.txt", "w") as err_file:
        proc = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, env=env, stdout=out_file, stderr=err_file,
                                start_new_session=True)
    try:
        proc.wait(timeout=1400)  # scrypt key decryption per command dominates; slow under load on 2 cores
        out, err = (tmp_path / "out.txt").read_text(), (tmp_path / "err.txt").read_text()
    finally:
        stop_chain(tmp_path)  # `network up` detaches the chain from the walkthrough's process group
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        time.sleep(2)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    seconds = time.monotonic() - started
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in (tmp_path / "net").glob("*.log")) \
        if (tmp_path / "net").exists() else ""
    assert proc.returncode == 0, f"walkthrough failed after {seconds:.0f} s\nstdout:\n{out[-4000:]}\nstderr:\n{err[-4000:]}\n{logs}"
    print(f"walkthrough took {seconds:.1f} s")
    check_walkthrough(out, err, tmp_path, world)


def check_walkthrough(out: str, err: str, tmp_path: Path, world: dict) -> None:
    """Every step's output against the plain computation over the generated files."""
    claims = world["bolt_claims"]

    # 1. the founders are the test's own, with their roles
    for name, role in (("acme-insurance", "INSURER"), ("bolt-mutual", "INSURER"), ("cartwheel", "PLATFORM"),
                       ("watchdog", "REGULATOR"), ):
        assert re.search(rf"{name}\s.*{role}", out), name
    # 3. the votes show the threshold; the third vote admits
    assert "1 of 3 votes needed (4 members not expelled" in out
    assert "dove-health admitted with 3 votes (3 needed of 4 members)" in out
    assert "funded dove-health with 1 ether" in out  # by the vote that admitted it
    # its node, started before it was a member, retried its key registration and became ready unrestarted
    assert "retrying in" in (tmp_path / "net" / "dove-health.log").read_text()
    # 4. `grant list`, piped, shows whole rows with names and the dataset
    assert re.search(r"│\s*\d+\s*│ bolt-mutual\s*│ dove-health\s*│ claims\s*│ STATISTICS\s*│", out), out
    # 5. the query answer equals the plain computation over the CSV
    answer = json_lines(out, "owner_name")[0]
    expected, persons = defaultdict(float), defaultdict(set)
    for c in claims:
        if c["status"] == "paid":
            expected[c["region"]] += c["amount"]
            persons[c["region"]].add(c["person_id"])
    assert min(len(p) for p in persons.values()) >= 10  # so the owner's gate releases every region
    assert answer["owner_name"] == "bolt-mutual"
    assert {r["group"]: round(r["value"], 2) for r in answer["rows"]} == {k: round(v, 2) for k, v in expected.items()}
    assert answer["records"] == sum(c["status"] == "paid" for c in claims)
    # 6. one job of each kind, each equal to the plain computation
    check_statistics(out, world)
    # 7. the auditor verifies the uploaded document against the chain
    assert "VALID: invoice-0001.pdf is the invoice submitted for claim CLM-0001" in out
    proof = json.loads((tmp_path / "proofs" / "invoice-0001.pdf.proof.json").read_text())
    assert proof["anchor"]["tx_hash"].startswith("0x") and proof["document"] == "invoice-0001.pdf"
    # 8. the regulator's access log names members, untruncated although piped; evidence events are indexed
    # every use of another member's data by dove-health: the query, both job contributions, the fraud check
    access_rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines()
                   if line.startswith("│") and "│ access " in line and "│ dove-health " in line]
    assert {(r[4], r[5], r[6]) for r in access_rows} == {("bolt-mutual", "STATISTICS", "claims"),
                                                         ("acme-insurance", "STATISTICS", "claims"),
                                                         ("acme-insurance", "FRAUD", "fraud_list")}, out
    events = json_lines(out, "items")[0]
    assert events["items"], events
    # ... and anyone else's node is refused with the reason, non-zero
    assert "refused: only the regulator" in out
    assert "not_regulator" in err
