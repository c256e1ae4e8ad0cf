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

from node.chain.anvil import free_port

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Your own consortium"


def walkthrough_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end if end != -1 else None]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def write_data(folder: Path, rng: random.Random) -> list[dict]:
    claims = []
    # enough policyholders that every region clears the owner's minimum cohort (10 distinct persons)
    for i in range(300):
        claims.append({"claim_id": f"C-{i:04d}", "person_id": f"P-{i % 150:04d}", "amount": round(rng.uniform(50, 9000), 2),
                       "claim_date": f"2026-{rng.randint(1, 9):02d}-{rng.randint(1, 28):02d}",
                       "status": rng.choice(["paid", "paid", "rejected", "open"]), "region": rng.choice(["north", "south", "east"])})
    with (folder / "bolt-claims.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(claims[0]))
        writer.writeheader()
        writer.writerows(claims)
    consents = [{"subject": f"P-{i:04d}", "scope": "claims statistics", "at": "2026-11"} for i in range(150)]
    (folder / "bolt-consents.json").write_text(json.dumps(consents))
    (folder / "invoice-0001.pdf").write_bytes(b"%PDF-1.4\n" + rng.randbytes(3000))
    return claims


def test_readme_walkthrough_own_members_own_data(tmp_path):
    blocks = walkthrough_blocks()
    assert len(blocks) == 7, "the walkthrough's seven steps"
    claims = write_data(tmp_path, random.Random(13))
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
        proc.wait(timeout=600)  # ~4 min under a load average of 15 on 2 cores (scrypt key decryption per command)
        out, err = (tmp_path / "out.txt").read_text(), (tmp_path / "err.txt").read_text()
    finally:
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

    # 1. the founders are the test's own, with their roles
    for name, role in (("acme-insurance", "INSURER"), ("bolt-mutual", "INSURER"), ("cartwheel", "PLATFORM"),
                       ("watchdog", "REGULATOR"), ):
        assert re.search(rf"{name}\s.*{role}", out), name
    # 3. the votes show the threshold; the third vote admits
    assert "1 of 3 votes needed (4 members not expelled" in out
    assert "dove-health admitted with 3 votes (3 needed of 4 members)" in out
    assert "funded dove-health" in out
    # 5. the query answer equals the plain computation over the CSV
    answer = next(json.loads(line) for line in out.splitlines() if line.startswith("{") and '"owner_name"' in line)
    expected, persons = defaultdict(float), defaultdict(set)
    for c in claims:
        if c["status"] == "paid":
            expected[c["region"]] += c["amount"]
            persons[c["region"]].add(c["person_id"])
    assert min(len(p) for p in persons.values()) >= 10  # so the owner's gate releases every region
    assert answer["owner_name"] == "bolt-mutual"
    assert {r["group"]: round(r["value"], 2) for r in answer["rows"]} == {k: round(v, 2) for k, v in expected.items()}
    assert answer["records"] == sum(c["status"] == "paid" for c in claims)
    # 6. the auditor verifies the uploaded document against the chain
    assert "VALID: invoice-0001.pdf is the invoice submitted for claim CLM-0001" in out
    assert (tmp_path / "proofs" / "invoice-0001.pdf.proof.json").exists()
    # 7. the regulator's access log names members, untruncated although piped; evidence events are indexed
    access_rows = [line for line in out.splitlines() if "access" in line and "dove-health" in line]
    assert access_rows and "bolt-mutual" in access_rows[0], out
    events = next(json.loads(line) for line in out.splitlines() if line.startswith("{") and '"items"' in line)
    assert events["items"], events
    # ... and anyone else's node is refused with the reason, non-zero
    assert "refused: only the regulator" in out
    assert "not_regulator" in err
