"""Networking benchmarks (issue 5): what bridge networking adds to `run`, and published-port throughput.

1. `run --rm busybox true` on a user bridge network vs `--network none`, dockyard beside docker (a private
   dockerd, given a user bridge network of its own on a private subnet; it runs with --iptables=false,
   so only its netns/veth/bridge work is measured, as for dockyard's proxy path).
2. Throughput host -> container through a port published on 127.0.0.1 (dockyard's userland proxy vs
   docker-proxy): the container sinks the bytes with busybox nc.

Runs are interleaved so machine noise hits both engines alike. Everything created is removed.

    sudo .venv/bin/python bench/network_bench.py [--runs 15] [--megabytes 256]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.daemon import DaemonEnv, host_cleanup
from tests.helpers.dockerd import PrivateDockerd, dockerd_available
from tests.helpers.rootfs import busybox_rootfs_tar

SINK = "while true; do nc -l -p 80 > /dev/null; done"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def private_subnet() -> str:
    """A /24 that overlaps no route of this host (checked with pyroute2)."""
    from dockyard.network.bridge import host_routes
    from dockyard.network.ipam import choose_subnet, parse_subnet

    pools = (parse_subnet(f"10.214.{n}.0/24") for n in range(256))
    return str(choose_subnet(host_routes(), pools))


def push(port: int, megabytes: int, host: str = "127.0.0.1") -> float:
    """Send `megabytes` MiB to 127.0.0.1:port; MiB/s until the receiver closed (all bytes consumed).
    Retried while the sink is not listening yet (the proxy then resets the connection)."""
    deadline = time.time() + 20
    while True:
        try:
            return _push_once(host, port, megabytes)
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def _push_once(host: str, port: int, megabytes: int) -> float:
    block = b"\0" * (1 << 20)
    with socket.create_connection((host, port), timeout=5) as conn:
        t0 = time.perf_counter()
        for _ in range(megabytes):
            conn.sendall(block)
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(60)
        while conn.recv(65536):
            pass
        return megabytes / (time.perf_counter() - t0)


class Engine:
    def __init__(self, name: str, cli: Callable[..., subprocess.CompletedProcess], run_flags: list[str]) -> None:
        self.name = name
        self.cli = cli
        self.run_flags = run_flags

    def time_run(self, network: str) -> float:
        t0 = time.perf_counter()
        result = self.cli("run", *self.run_flags, "--rm", "--network", network, "busybox", "true")
        elapsed = time.perf_counter() - t0
        if result.returncode != 0:
            raise RuntimeError(f"{self.name}: {result.stderr.decode()[-400:]}")
        return elapsed

    def throughput(self, megabytes: int, network: str) -> tuple[float, float]:
        """(through the published loopback port, straight to the container's address)."""
        port = free_port()
        name = f"sink{port}"
        publish = f"127.0.0.1:{port}:80"
        flags = [*self.run_flags, "-d", "--name", name, "--network", network, "-p", publish]
        result = self.cli("run", *flags, "busybox", "sh", "-c", SINK)
        if result.returncode != 0:
            raise RuntimeError(f"{self.name}: {result.stderr.decode()[-400:]}")
        try:
            push(port, 8)  # warm up (and wait until nc listens)
            proxied = max(push(port, megabytes) for _ in range(3))
            fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
            address = self.cli("inspect", "--format", fmt, name).stdout.decode().strip()
            direct = max(push(80, megabytes, address) for _ in range(3))
            return proxied, direct
        finally:
            self.cli("rm", "-f", name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--runtime", default="", help="dockyard's runtime for these runs (default: the daemon's)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dy-netbench-", dir="/tmp"))
    env = DaemonEnv(base, base / "data", base / "run", base / "d.sock")
    docker: PrivateDockerd | None = None
    engines: list[tuple[Engine, str]] = []
    try:
        env.start()
        tar = busybox_rootfs_tar(base / "busybox.tar", base / "build")
        env.out("import", "--change", 'CMD ["sh"]', str(tar), "busybox:latest")
        env.out("network", "create", "--subnet", private_subnet(), "benchnet")
        engines.append(
            (
                Engine(
                    "dockyard", lambda *a: env.cli(*a, timeout=120), ["--runtime", args.runtime] if args.runtime else []
                ),
                "benchnet",
            )
        )
        if dockerd_available():
            docker = PrivateDockerd(base / "docker")
            docker.start()
            docker.run("import", "--change", 'CMD ["sh"]', str(tar), "busybox:latest", check=True)
            docker.run("network", "create", "--subnet", private_subnet(), "-o",
                       "com.docker.network.bridge.name=dybench0", "benchnet", check=True)  # fmt: skip
            engines.append((Engine("docker", lambda *a: docker.run(*a, timeout=120), []), "benchnet"))
        times: dict[tuple[str, str], list[float]] = {}
        for engine, net in engines:  # warm-up: caches, zygotes, first bridge port
            engine.time_run("none")
            engine.time_run(net)
        for _ in range(args.runs):
            for engine, net in engines:
                for mode in ("none", net):
                    times.setdefault((engine.name, mode), []).append(engine.time_run(mode))
        print(f"\n`run --rm busybox true`, median of {args.runs} (ms)\n")
        print("| engine | --network none | user bridge | added by bridge |\n|---|---|---|---|")
        for engine, net in engines:
            none = statistics.median(times[(engine.name, "none")]) * 1000
            bridged = statistics.median(times[(engine.name, net)]) * 1000
            print(f"| {engine.name} | {none:.0f} | {bridged:.0f} | {bridged - none:+.0f} |")
        print(f"\nhost -> container through 127.0.0.1:PORT, {args.megabytes} MiB, best of 3 (MiB/s)\n")
        print("| engine | proxy | via proxy MiB/s | direct to container MiB/s |\n|---|---|---|---|")
        for engine, net in engines:
            proxy = "dockyard.network.proxy (splice)" if engine.name == "dockyard" else "docker-proxy"
            proxied, direct = engine.throughput(args.megabytes, net)
            print(f"| {engine.name} | {proxy} | {proxied:.0f} | {direct:.0f} |")
    finally:
        if docker is not None:
            with contextlib.suppress(Exception):
                docker.run("ps", "-aq")
                ids = docker.run("ps", "-aq").stdout.decode().split()
                if ids:
                    docker.run("rm", "-f", *ids)
                docker.run("network", "rm", "benchnet")
            docker.stop()
            subprocess.run(["ip", "link", "del", "dybench0"], capture_output=True)  # only if dockerd left it
        ids = env.cli("ps", "-aq").stdout.decode().split() if env.proc else []
        if ids:
            env.cli("rm", "-f", *ids)
        env.cli("network", "rm", "benchnet")
        env.stop()
        host_cleanup(env)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
