"""Invariant fuzzing of the contracts with Foundry's forge (contracts/test/, foundry.toml).

forge ships in node_modules (npm @foundry-rs/forge-linux-amd64, like anvil) and compiles with the
project's solc wrapper, offline. The default profile is bounded (runs/depth in foundry.toml);
`FOUNDRY_PROFILE=long` runs the longer one. A second run on deliberately broken copies of the
contracts shows that each invariant really catches the fault it is about.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from node.paths import NODE_MODULES, PROJECT_ROOT

FORGE = NODE_MODULES / "@foundry-rs" / "forge-linux-amd64" / "bin" / "forge"
INVARIANTS = {"invariant_revokedOrExpiredGrantNeverAuthorizes", "invariant_evidenceRootIsWriteOnce",
              "invariant_eachMemberVotesOncePerProposal", "invariant_admissionNeedsTheSupermajorityOfTheElectorate",
              "invariant_suspendedMemberChangesNoState"}


def forge_test(root: Path) -> dict[str, str]:
    """Run `forge test --json` in ``root``; returns {test name: Success|Failure}."""
    assert FORGE.exists(), f"forge is not installed at {FORGE}: run scripts/setup.sh (npm ci)"
    env = {**os.environ, "FOUNDRY_PROFILE": os.environ.get("FOUNDRY_PROFILE", "default")}
    proc = subprocess.run([str(FORGE), "test", "--json"], cwd=root, capture_output=True, text=True, timeout=600, env=env)
    start = proc.stdout.find("{")
    assert start >= 0, f"forge printed no results (exit {proc.returncode}): {proc.stderr[-3000:]}{proc.stdout[-3000:]}"
    suites = json.loads(proc.stdout[start:])
    return {name.split("(")[0]: result["status"] for suite in suites.values()
            for name, result in suite["test_results"].items()}


def test_invariants_hold():
    results = forge_test(PROJECT_ROOT)
    assert set(results) == INVARIANTS
    assert all(status == "Success" for status in results.values()), results


MUTATIONS = {  # file: (original, broken) -- each undoes one rule that an invariant is about
    "ConsortiumRegistry.sol": [
        ("if (uint256(p.votes) * 3 > electorate * 2) {", "if (uint256(p.votes) * 3 > goodStandingCount * 2) {"),
        ("function setEndpoint(string calldata endpoint) external onlyGoodStanding {",
         "function setEndpoint(string calldata endpoint) external {"),
    ],
    "EvidenceRegistry.sol": [
        ("if (_batchIdByRoot[rootKey] != bytes32(0)) revert RootAlreadyAnchored(msg.sender, root);", ""),
    ],
    "DataUseAuthorization.sol": [
        ("if (g.revokedAt != 0) return GrantState.REVOKED;", ""),
    ],
}


def test_each_invariant_catches_its_fault_in_broken_contracts(tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(PROJECT_ROOT / "contracts", root / "contracts")
    (root / "scripts").mkdir()
    shutil.copy(PROJECT_ROOT / "scripts" / "solc", root / "scripts" / "solc")
    shutil.copy(PROJECT_ROOT / "foundry.toml", root / "foundry.toml")
    (root / "node_modules").symlink_to(NODE_MODULES)
    for name, edits in MUTATIONS.items():
        path = root / "contracts" / name
        text = path.read_text()
        for original, broken in edits:
            assert text.count(original) == 1, f"mutation target moved in {name}: {original}"
            text = text.replace(original, broken)
        path.write_text(text)
    results = forge_test(root)
    failed = {name for name, status in results.items() if status != "Success"}
    # the vote-once invariant has no mutation here (AlreadyVoted is kept): it must still hold
    assert failed == INVARIANTS - {"invariant_eachMemberVotesOncePerProposal"}, results
    assert re.match(r"^[A-Za-z]+$", results["invariant_eachMemberVotesOncePerProposal"])
