"""Network namespaces joined by a bridge: separate hosts on one machine, for the tests.

Each host is a network namespace (``ip netns``) with its own loopback and one veth
interface plugged into a bridge in the test's namespace, which gets the subnet's
first address so the test itself reaches every host. Needs ``CAP_NET_ADMIN``
(root); :func:`unavailable` says why not when it cannot work here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run(
        [*prefix, "ip", *args], capture_output=True, text=True, check=check, timeout=30
    )


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or ``None`` when they can."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"sfprobe{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed (needs root / CAP_NET_ADMIN): {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Network:
    """Hosts ``name -> address`` on ``10.213.<n>.0/24``; the test's side is ``.1``."""

    tag: str
    subnet: int
    hosts: dict[str, str] = field(default_factory=dict)

    @property
    def bridge(self) -> str:
        return f"sfbr{self.tag}"

    @property
    def gateway(self) -> str:
        return f"10.213.{self.subnet}.1"

    def netns(self, host: str) -> str:
        return f"sf-{self.tag}-{host}"

    def _veth(self, host: str) -> str:
        return f"sf{self.tag}{list(self.hosts).index(host)}"  # <= 15 characters

    def exec_argv(self, host: str, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside ``host``'s namespace."""
        return ["ip", "netns", "exec", self.netns(host), *argv]

    @classmethod
    def create(cls, names: Iterable[str]) -> Network:
        """Make the bridge and one namespace per name, addresses ``.2``, ``.3``, ..."""
        pid = os.getpid()
        net = cls(tag=str(pid % 100_000), subnet=pid % 250 + 1)
        net.hosts = {name: f"10.213.{net.subnet}.{i}" for i, name in enumerate(names, start=2)}
        try:
            _ip("link", "add", net.bridge, "type", "bridge")
            _ip("addr", "add", f"{net.gateway}/24", "dev", net.bridge)
            _ip("link", "set", net.bridge, "up")
            for host, address in net.hosts.items():
                ns, veth = net.netns(host), net._veth(host)
                _ip("netns", "add", ns)
                _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
                _ip("link", "set", veth, "master", net.bridge, "up")
                _ip("addr", "add", f"{address}/24", "dev", "eth0", netns=ns)
                _ip("link", "set", "eth0", "up", netns=ns)
                _ip("link", "set", "lo", "up", netns=ns)
        except subprocess.CalledProcessError as exc:
            net.delete()
            raise RuntimeError(f"{' '.join(exc.cmd)} failed: {exc.stderr.strip()}") from exc
        return net

    def pids_inside(self, host: str) -> list[int]:
        listed = subprocess.run(
            ["ip", "netns", "pids", self.netns(host)], capture_output=True, text=True, check=False
        )
        return [int(p) for p in listed.stdout.split()]

    def delete(self) -> None:
        """Remove namespaces, veths and the bridge (processes inside must be gone)."""
        for host in self.hosts:
            _ip("netns", "del", self.netns(host), check=False)
        _ip("link", "del", self.bridge, check=False)
