"""Members as separate hosts on one machine: a Linux network namespace per member, joined by veth to a bridge.

Each member's namespace holds its geth and its node and has two links:

- ``wan0``, a veth on the consortium bridge: its own address, where the other members reach its geth (p2p) and
  its node (statistics peers). A partition is this link taken down (one member cut off) or, for two groups,
  the group's links moved onto a second bridge (each side still talks within itself).
- ``lan0``, a point-to-point veth to this machine: the member's own side (its operators and systems; here the
  test or benchmark process). It stays up in a partition, as a member's internal network does.

Needs root and iproute2 (``ip netns``); :func:`namespaces_available` says whether this machine allows it,
otherwise callers fall back to loopback TCP proxies (node/chain/links.py). Every name carries a random
run id, so parallel runs never collide, and :meth:`NamespaceHosts.remove` (also run at exit) deletes the
namespaces, veths and bridges it made, after ending the processes still inside them (only its own).
"""
from __future__ import annotations

import atexit
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from node.errors import ConsortiumError
from node.network.pids import alive

PREFIX = "cn"  # every name this module creates starts with it
RUNS = Path("/run/consortium-netns")  # run id -> pid of the process that made it, for sweeping after a crash


class NamespaceError(ConsortiumError):
    reason = "netns"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and out.returncode != 0:
        raise NamespaceError(f"ip {' '.join(args)} failed: {out.stderr.strip()}", hint="needs root and iproute2")
    return out


def namespaces_available() -> tuple[bool, str]:
    """(True, "") when this process may create network namespaces, else (False, why not)."""
    if os.name != "posix" or os.geteuid() != 0:
        return False, "not root"
    if shutil.which("ip") is None:
        return False, "no iproute2 (`ip`)"
    probe = f"{PREFIX}probe{secrets.token_hex(3)}"
    try:
        made = _ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return False, f"`ip netns add` refused: {made.stderr.strip()}"
        bridge = _ip("link", "add", probe[:15], "type", "bridge", check=False)
        if bridge.returncode != 0:
            return False, f"cannot create a bridge: {bridge.stderr.strip()}"
        return True, ""
    finally:
        _ip("link", "del", probe[:15], check=False)
        _ip("netns", "del", probe, check=False)


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = _ip("-4", "route", "show", "table", "all", check=False).stdout
    nets = []
    for line in out.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("default", "broadcast", "local", "unreachable"):
            continue
        try:
            nets.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue
    return nets


def _free_subnets() -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Network]:
    """Two /24s in 10/8 that no route on this machine overlaps: the bridge's and the member links'."""
    used = _used_networks()
    for _ in range(200):
        a, b = 100 + secrets.randbelow(100), secrets.randbelow(127) * 2
        wan, lan = ipaddress.ip_network(f"10.{a}.{b}.0/24"), ipaddress.ip_network(f"10.{a}.{b + 1}.0/24")
        if not any(wan.overlaps(n) or lan.overlaps(n) for n in used):
            return wan, lan
    raise NamespaceError("no free 10.x.y.0/24 for the member network", hint="remove stale routes")


@dataclass
class Host:
    """One member's namespace and addresses."""

    name: str
    namespace: str
    wan_veth: str  # this machine's end, a port of the bridge
    lan_veth: str  # this machine's end of the member's own link
    wan_ip: str  # where other members reach it
    lan_ip: str  # where its own side (this process) reaches it


@dataclass
class NamespaceHosts:
    members: list[str]
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    hosts: dict[str, Host] = field(default_factory=dict)
    created: bool = False

    method = "network namespaces (veth + bridge; partition = link down)"

    @property
    def bridge(self) -> str:
        return f"{PREFIX}b{self.run_id}"

    @property
    def side_bridge(self) -> str:
        return f"{PREFIX}s{self.run_id}"  # the second segment a partitioned group is moved to

    def create(self) -> "NamespaceHosts":
        if len(self.members) > 60:
            raise NamespaceError("at most 60 members per machine", hint="use fewer members")
        sweep_stale()
        wan, lan = _free_subnets()
        atexit.register(self.remove)
        self.created = True
        RUNS.mkdir(parents=True, exist_ok=True)
        (RUNS / self.run_id).write_text(f"{os.getpid()} {len(self.members)}\n")
        try:
            for bridge in (self.bridge, self.side_bridge):
                _ip("link", "add", bridge, "type", "bridge", "forward_delay", "0")
                _ip("link", "set", bridge, "up")
            for i, name in enumerate(self.members):
                host = Host(name, f"{PREFIX}-{self.run_id}-{i}", f"{PREFIX}w{self.run_id}{i}", f"{PREFIX}l{self.run_id}{i}",
                            str(wan.network_address + 10 + i), str(lan.network_address + 4 * i + 2))
                self.hosts[name] = host
                ns = host.namespace
                _ip("netns", "add", ns)
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("link", "add", host.wan_veth, "type", "veth", "peer", "name", f"{host.wan_veth}p")
                _ip("link", "set", f"{host.wan_veth}p", "netns", ns)
                _ip("-n", ns, "link", "set", f"{host.wan_veth}p", "name", "wan0")
                _ip("-n", ns, "addr", "add", f"{host.wan_ip}/24", "dev", "wan0")
                _ip("-n", ns, "link", "set", "wan0", "up")
                _ip("link", "set", host.wan_veth, "master", self.bridge, "up")
                _ip("link", "add", host.lan_veth, "type", "veth", "peer", "name", f"{host.lan_veth}p")
                _ip("link", "set", f"{host.lan_veth}p", "netns", ns)
                _ip("-n", ns, "link", "set", f"{host.lan_veth}p", "name", "lan0")
                _ip("-n", ns, "addr", "add", f"{host.lan_ip}/30", "dev", "lan0")
                _ip("-n", ns, "link", "set", "lan0", "up")
                _ip("addr", "add", f"{lan.network_address + 4 * i + 1}/30", "dev", host.lan_veth)
                _ip("link", "set", host.lan_veth, "up")
        except BaseException:
            self.remove()
            raise
        return self

    def __enter__(self) -> "NamespaceHosts":
        return self.create()

    def __exit__(self, *exc) -> None:
        self.remove()

    def prefix(self, name: str) -> list[str]:
        """The command prefix that runs a program inside ``name``'s namespace."""
        return ["ip", "netns", "exec", self.hosts[name].namespace]

    # ------------------------------------------------------------------ faults

    def cut(self, name: str) -> None:
        _ip("link", "set", self.hosts[name].wan_veth, "down")

    def partition(self, *groups: list[str]) -> None:
        """The first group stays on the bridge; the other groups' links move to a second one, cut from the first."""
        for group in groups[1:]:
            for name in group:
                _ip("link", "set", self.hosts[name].wan_veth, "master", self.side_bridge)
        if len(groups) > 2:
            raise NamespaceError("at most two groups", hint="cut single members with cut()")

    def heal(self) -> None:
        for host in self.hosts.values():
            _ip("link", "set", host.wan_veth, "master", self.bridge, "up")

    # ------------------------------------------------------------------ clean-up

    def _end_processes(self, namespace: str) -> None:
        # Only processes inside this run's own namespaces, which only this run started.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = [int(p) for p in _ip("netns", "pids", namespace, check=False).stdout.split() if p.isdigit()]
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            deadline = time.monotonic() + 5
            while pids and time.monotonic() < deadline:
                if not _ip("netns", "pids", namespace, check=False).stdout.split():
                    return
                time.sleep(0.1)

    def remove(self) -> None:
        """Delete everything this run created; safe to call twice and after a partial create()."""
        if not self.created:
            return
        for i, _ in enumerate(self.members):
            ns = f"{PREFIX}-{self.run_id}-{i}"
            if _ip("netns", "pids", ns, check=False).returncode == 0:
                self._end_processes(ns)
            _ip("netns", "del", ns, check=False)  # takes the namespace's veth ends, and so both ends, with it
            for veth in (f"{PREFIX}w{self.run_id}{i}", f"{PREFIX}l{self.run_id}{i}"):
                _ip("link", "del", veth, check=False)
        for bridge in (self.bridge, self.side_bridge):
            _ip("link", "del", bridge, check=False)
        (RUNS / self.run_id).unlink(missing_ok=True)
        self.created = False
        atexit.unregister(self.remove)

    def leftovers(self) -> list[str]:
        """Names of this run's namespaces or links that still exist (empty after remove())."""
        names = _ip("netns", "list", check=False).stdout + _ip("-o", "link", "show", check=False).stdout
        return sorted({word.rstrip(":").split("@")[0] for word in names.split() if self.run_id in word})



def sweep_stale() -> list[str]:
    """Remove what runs killed before their clean-up (SIGKILL) left behind: only runs whose creator is gone
    and whose namespaces hold no process any more (a process still inside is never ended here)."""
    swept = []
    for record in RUNS.glob("*") if RUNS.is_dir() else []:
        try:
            pid, count = (int(x) for x in record.read_text().split())
        except (OSError, ValueError):
            continue
        if alive(pid):
            continue
        namespaces = [f"{PREFIX}-{record.name}-{i}" for i in range(count)]
        if any(_ip("netns", "pids", ns, check=False).stdout.split() for ns in namespaces):
            continue
        run = NamespaceHosts([str(i) for i in range(count)], run_id=record.name, created=True)
        run.remove()
        swept.append(record.name)
    return swept
