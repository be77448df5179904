"""Hosts for the multi-host test: each one a Linux network namespace on this machine.

A `Network` is a bridge in the root namespace with a private /24 (10.213.N.0/24, a free
N per run); the root side holds .1, where the test's Redis and S3 server listen. Each
`Host` gets a veth pair into the bridge and an address of its own, so it reaches the
root side's .1 and nothing the root namespace serves on 127.0.0.1 (PostgreSQL listens
there only). Each host also has a mount namespace of its own where the control
plane's folders (its var/ dir, the test's temporary folders with the SQLite file and
the web's cache, the base models) are covered by an empty tmpfs, and a home folder
that no other host sees; and a UTS namespace, so its hostname (which the GPU worker
reports) is its name.

Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN), iproute2 and util-linux (unshare,
nsenter); `Network.create` skips the test, with the failing command's error, where
they are missing. `Network.destroy` kills every process of every host and removes
the namespaces and links, whatever state the test left them in.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SUBNETS = ipaddress.ip_network("10.213.0.0/16")  # the test allows connections to it


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"`{shlex.join(argv)}` failed: {result.stderr.strip()}")
    return result


def _free_subnet() -> ipaddress.IPv4Network:
    used = _run("ip", "-o", "-4", "addr", "show").stdout
    candidates = list(SUBNETS.subnets(new_prefix=24))
    start = os.getpid() % len(candidates)
    for subnet in candidates[start:] + candidates[:start]:
        prefix = str(subnet.network_address).rsplit(".", 1)[0] + "."
        if f" {prefix}" not in used:
            return subnet
    raise RuntimeError(f"no free /24 left in {SUBNETS}")


@dataclass
class Host:
    name: str
    network: Network
    index: int
    address: str
    netns: str
    home: Path  # private to this host: under a hidden folder, inside its own tmpfs
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def mount_ns(self) -> Path:
        return self.network.ns_dir / f"{self.name}.mnt"

    @property
    def uts_ns(self) -> Path:
        return self.network.ns_dir / f"{self.name}.uts"

    @property
    def link(self) -> str:
        return f"{self.network.prefix}h{self.index}"

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run on this host: its network, its mounts, its hostname."""
        return [
            "nsenter",
            f"--net=/run/netns/{self.netns}",
            f"--mount={self.mount_ns}",
            f"--uts={self.uts_ns}",
            f"--wd={self.network.cwd}",
            "--",
            *argv,
        ]

    def start(self, argv: list[str], *, env: dict, log: Path) -> subprocess.Popen:
        """A process on this host, its output in `log` (a file of the test's, opened here)."""
        with log.open("ab") as output:  # the child keeps its own descriptor
            process = subprocess.Popen(
                self.command(argv), env=env, stdout=output, stderr=subprocess.STDOUT
            )
        self.processes.append(process)
        return process

    def run(self, argv: list[str], *, env: dict | None = None, timeout: float = 60) -> str:
        result = subprocess.run(
            self.command(argv),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"on {self.name}: {argv}: {result.stderr}"
        return result.stdout

    def pids(self) -> list[int]:
        listed = _run("ip", "netns", "pids", self.netns, check=False).stdout
        return [int(pid) for pid in listed.split()]

    def kill(self) -> None:
        """The host dies: every process on it is killed at once, and its link goes."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
        _run("ip", "link", "delete", self.link, check=False)


class Network:
    def __init__(self, root: Path, *, cwd: Path, hidden: list[Path]):
        self.prefix = f"tm{os.getpid()}"  # interface names are at most 15 characters
        self.root = root
        self.cwd = cwd
        self.hidden = [path for path in hidden if path.is_dir()]
        self.ns_dir = root / "namespaces"
        self.bridge = f"{self.prefix}br"
        self.hosts: list[Host] = []
        self.subnet: ipaddress.IPv4Network | None = None
        self._ns_dir_mounted = False

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge: where Redis and S3 listen."""
        return str(self.subnet.network_address + 1)

    @classmethod
    def create(cls, root: Path, *, cwd: Path, hidden: list[Path]) -> Network:
        missing = [tool for tool in ("ip", "unshare", "nsenter") if shutil.which(tool) is None]
        if missing:
            pytest.skip(f"network namespaces are unavailable: {', '.join(missing)} not found")
        network = cls(root, cwd=cwd, hidden=hidden)
        probe = f"{network.prefix}-probe"
        tried = _run("ip", "netns", "add", probe, check=False)
        if tried.returncode != 0:
            pytest.skip(
                f"network namespaces are unavailable: `ip netns add` failed: {tried.stderr.strip()}"
            )
        _run("ip", "netns", "delete", probe, check=False)
        try:
            network._create_bridge()
        except RuntimeError as error:
            network.destroy()
            pytest.skip(f"network namespaces are unavailable: {error}")
        return network

    def _create_bridge(self) -> None:
        self.subnet = _free_subnet()
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        # Persistent mount and UTS namespaces are bind mounts of files; their folder
        # must be a private mount for that.
        self.ns_dir.mkdir(parents=True)
        _run("mount", "--bind", str(self.ns_dir), str(self.ns_dir))
        self._ns_dir_mounted = True
        _run("mount", "--make-private", str(self.ns_dir))

    def add_host(self, name: str, *, copy: dict[Path, str] | None = None) -> Host:
        """A new host; `copy` maps a folder of this machine to a path under its home,
        copied there before the control plane's folders are hidden."""
        index = len(self.hosts) + 1
        host = Host(
            name=name,
            network=self,
            index=index,
            address=str(self.subnet.network_address + 1 + index),
            netns=f"{self.prefix}-{name}",
            home=self.root / "hosts" / name,
        )
        self.hosts.append(host)
        _run("ip", "netns", "add", host.netns)
        peer = f"{self.prefix}p{index}"
        _run("ip", "link", "add", host.link, "type", "veth", "peer", "name", peer)
        _run("ip", "link", "set", peer, "netns", host.netns)
        _run("ip", "link", "set", host.link, "master", self.bridge, "up")
        inside = ["ip", "netns", "exec", host.netns]
        _run(*inside, "ip", "addr", "add", f"{host.address}/24", "dev", peer)
        _run(*inside, "ip", "link", "set", peer, "up")
        _run(*inside, "ip", "link", "set", "lo", "up")

        host.mount_ns.touch()
        host.uts_ns.touch()
        # Staged outside every hidden folder, so the host's shell can still read it.
        staged = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-{name}-"))
        try:
            for source, target in (copy or {}).items():
                shutil.copytree(source, staged / target)
            # Hide the control plane's folders; the home is made inside the first tmpfs,
            # so it exists on this host only.
            script = [f"hostname {shlex.quote(name)}"]
            script += [
                f"mount -t tmpfs tokenmill-hidden {shlex.quote(str(path))}" for path in self.hidden
            ]
            script += [
                f"mkdir -p {shlex.quote(str(host.home))}",
                f"cp -a {shlex.quote(str(staged))}/. {shlex.quote(str(host.home))}/",
            ]
            _run(
                "unshare",
                f"--mount={host.mount_ns}",
                f"--uts={host.uts_ns}",
                "--propagation",
                "private",
                "sh",
                "-ec",
                " && ".join(script),
            )
        finally:
            shutil.rmtree(staged)
        return host

    def destroy(self) -> None:
        for host in self.hosts:
            host.kill()
            for ns in (host.mount_ns, host.uts_ns):
                _run("umount", str(ns), check=False)
            _run("ip", "netns", "delete", host.netns, check=False)
        if self._ns_dir_mounted:
            _run("umount", str(self.ns_dir), check=False)
        _run("ip", "link", "delete", self.bridge, check=False)
