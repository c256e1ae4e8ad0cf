"""A throwaway PostgreSQL server for tests, from the machine's own PostgreSQL binaries."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from node.chain.anvil import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


def available() -> str | None:
    """None when a server can be started here, else why not."""
    if not (BIN / "initdb").exists() and shutil.which("initdb") is None:
        return "PostgreSQL server binaries are not installed"
    if os.geteuid() == 0:
        try:
            subprocess.run(["id", "postgres"], check=True, capture_output=True)
        except (subprocess.CalledProcessError, FileNotFoundError):
            return "running as root without a postgres user to own the server"
    return None


class PostgresServer:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="consortium-pg-"))
        self.port = free_port()
        root = os.geteuid() == 0
        self._as = ["runuser", "-u", "postgres", "--"] if root else []
        if root:
            shutil.chown(self.dir, "postgres", "postgres")
        initdb = str(BIN / "initdb") if (BIN / "initdb").exists() else "initdb"
        self.pg_ctl = str(BIN / "pg_ctl") if (BIN / "pg_ctl").exists() else "pg_ctl"
        subprocess.run([*self._as, initdb, "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True)
        subprocess.run([*self._as, self.pg_ctl, "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "-o",
                        f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on", "start"],
                       check=True, capture_output=True)
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run([*self._as, self.pg_ctl, "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop"], capture_output=True)
        time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)
