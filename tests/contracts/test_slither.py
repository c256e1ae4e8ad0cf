"""Static analysis of contracts/ with slither: CI fails on any High or Medium finding not reviewed.

Reviewed findings live in contracts/slither-reviewed.json with the reason for each. slither pins
web3 < 8 (the node needs 8), so it runs from its own virtualenv in build/slither-venv, installed here
from scripts/slither-requirements.txt on first use (PyPI only), and compiles through the project's
solc wrapper (`--solc scripts/solc --solc-standard-json`: crytic-compile's --combined-json path does
not work with the wrapper), on a copy of contracts/*.sol away from foundry.toml. `python tests/contracts/test_slither.py` prints the findings table.
"""
from __future__ import annotations

import collections
import hashlib
import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "scripts" / "slither-requirements.txt"
REVIEWED = ROOT / "contracts" / "slither-reviewed.json"
VENV = ROOT / "build" / "slither-venv"
SLITHER = VENV / "bin" / "slither"


def ensure_slither() -> Path:
    """Install the pinned slither into its own virtualenv once (re-done when the pins change)."""
    key = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = VENV / ".requirements-sha256"
    if SLITHER.exists() and stamp.exists() and stamp.read_text() == key:
        return SLITHER
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "-r", str(REQUIREMENTS)], check=True, timeout=600)
    stamp.write_text(key)
    return SLITHER


def run_slither(out: Path) -> list[dict]:
    # The deployed contracts only (contracts/*.sol, not the forge suite in contracts/test/), from a folder
    # without foundry.toml: crytic-compile would otherwise take the checkout for a forge project.
    work = out.parent / "src"
    (work / "contracts").mkdir(parents=True, exist_ok=True)
    for source in sorted((ROOT / "contracts").glob("*.sol")):
        shutil.copy(source, work / "contracts" / source.name)
    # OpenZeppelin (npm) next to them, so the wrapper resolves its imports; its own findings are filtered out.
    shutil.copytree(ROOT / "node_modules" / "@openzeppelin", work / "@openzeppelin", dirs_exist_ok=True)
    # slither exits non-zero whenever it finds anything; success is read from its JSON instead
    proc = subprocess.run([str(ensure_slither()), "contracts/", "--solc", str(ROOT / "scripts" / "solc"),
                           "--solc-standard-json", "--filter-paths", "@openzeppelin", "--json", str(out)],
                          cwd=work, capture_output=True, text=True, timeout=300)
    assert out.exists(), f"slither wrote no report: {proc.stderr[-2000:]}"
    report = json.loads(out.read_text())
    assert report["success"], f"slither failed: {report.get('error')}"
    return report["results"].get("detectors", [])


def function_of(finding: dict) -> str:
    """Contract.signature of the finding's first element (what the reviewed list names)."""
    first = finding["elements"][0]
    fields = first.get("type_specific_fields", {})
    parent = fields.get("parent", {}).get("name", "?")
    return f"{parent}.{fields.get('signature', first.get('name'))}"


def table(findings: list[dict], reviewed: list[dict]) -> list[tuple[str, str, int, int]]:
    """(detector, impact, count, reviewed count) per detector."""
    ok = {(r["detector"], r["function"]) for r in reviewed}
    counts: collections.Counter = collections.Counter()
    marked: collections.Counter = collections.Counter()
    for f in findings:
        counts[(f["check"], f["impact"])] += 1
        marked[(f["check"], f["impact"])] += (f["check"], function_of(f)) in ok
    order = {"High": 0, "Medium": 1, "Low": 2, "Informational": 3, "Optimization": 4}
    return [(d, i, n, marked[(d, i)]) for (d, i), n in sorted(counts.items(), key=lambda kv: (order[kv[0][1]], kv[0][0]))]


@pytest.fixture(scope="module")
def findings(tmp_path_factory) -> list[dict]:
    return run_slither(tmp_path_factory.mktemp("slither") / "slither.json")


def test_no_unreviewed_high_or_medium_finding(findings):
    config = json.loads(REVIEWED.read_text())
    gate, reviewed = set(config["gate"]), config["reviewed"]
    assert all(r.get("reason", "").strip() for r in reviewed), "every reviewed finding needs its reason"
    ok = {(r["detector"], r["function"]) for r in reviewed}
    gated = [f for f in findings if f["impact"] in gate]
    unreviewed = [f"{f['check']} ({f['impact']}) in {function_of(f)}: {f['description'].splitlines()[0]}"
                  for f in gated if (f["check"], function_of(f)) not in ok]
    assert not unreviewed, "unreviewed slither findings (fix them, or review them in contracts/slither-reviewed.json):\n" + \
        "\n".join(unreviewed)
    seen = {(f["check"], function_of(f)) for f in gated}
    stale = [f"{d} in {fn}" for d, fn in ok - seen]
    assert not stale, f"reviewed entries that match no finding any more (remove them): {stale}"


def test_the_analysis_really_ran_over_the_contracts(findings):
    """Guard against a silent no-op run: the known Low timestamp findings must be there."""
    assert any(f["check"] == "timestamp" and "DataUseAuthorization" in function_of(f) for f in findings)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        found = run_slither(Path(tmp) / "slither.json")
    print("| detector | impact | count | reviewed |\n|---|---|---|---|")
    for detector, impact, n, ok in table(found, json.loads(REVIEWED.read_text())["reviewed"]):
        print(f"| {detector} | {impact} | {n} | {ok} |")
    sys.exit(0)
