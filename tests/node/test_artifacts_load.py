"""A running node loads the contract build and never compiles: missing or stale builds are one clear refusal."""
from __future__ import annotations

import json
import shutil

import pytest

from node.chain.compiler import CompilerError, compile_contracts, load_artifacts
from node.paths import BUILD_DIR


def test_missing_build_is_refused_with_the_command_to_run(tmp_path):
    with pytest.raises(CompilerError) as refused:
        load_artifacts(build_dir=tmp_path)
    assert "missing" in str(refused.value) and "scripts/setup.sh" in refused.value.one_line()
    assert "\n" not in refused.value.one_line()


def test_build_from_other_sources_is_refused_as_stale(tmp_path):
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "artifacts.json").write_text(json.dumps({"key": "other sources", "contracts": {}}))
    with pytest.raises(CompilerError, match="stale"):
        load_artifacts(build_dir=tmp_path)


def test_fresh_build_loads_the_compiled_artifacts(artifacts, tmp_path):
    compile_contracts()  # cached: makes sure build/contracts/artifacts.json is this checkout's
    shutil.copytree(BUILD_DIR / "contracts", tmp_path / "contracts")
    loaded = load_artifacts(build_dir=tmp_path)
    assert {n: a.abi_hash for n, a in loaded.items()} == {n: a.abi_hash for n, a in artifacts.items()}
