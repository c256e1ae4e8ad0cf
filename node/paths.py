"""Where the project's tools and build outputs live."""
from __future__ import annotations

import os
from pathlib import Path

# The repository root: node/ sits directly below it (the project is installed editable).
PROJECT_ROOT = Path(os.environ.get("CONSORTIUM_PROJECT_ROOT", Path(__file__).resolve().parent.parent))
CONTRACTS_DIR = PROJECT_ROOT / "contracts"
BUILD_DIR = PROJECT_ROOT / "build"
SOLC_WRAPPER = PROJECT_ROOT / "scripts" / "solc"
NODE_MODULES = PROJECT_ROOT / "node_modules"
ANVIL_BINARY = NODE_MODULES / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
