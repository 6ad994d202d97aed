"""Registry throughput: dockyard's registry server vs distribution's (Debian's `docker-registry`).

Both serve the same content (one image: a config, a 10 MB layer, a manifest) pushed over HTTP, from
their own temporary roots on 127.0.0.1. `wrk` (apt install wrk) drives 16 concurrent keep-alive
connections: manifest GETs by tag (requests/s) and 10 MB blob GETs (MB/s). Prints a table.

    .venv/bin/python bench/registry_bench.py [--seconds 5] [--connections 16]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPO = "bench/app"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def start_dockyard(base: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dockyard",
            "registry",
            "serve",
            "--addr",
            f"127.0.0.1:{port}",
            "--root",
            str(base / "dockyard"),
        ],
        stderr=subprocess.DEVNULL,
    )


def start_distribution(base: Path, port: int) -> subprocess.Popen:
    config = base / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {base / 'distribution'}\n  delete:\n    enabled: true\n"
        f"  cache:\n    blobdescriptor: inmemory\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    return subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def push_image(port: int, layer: bytes) -> str:
    """Monolithic-ish push (POST, then PUT with the body) of config + layer, then the manifest."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def push_blob(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        conn.request("POST", f"/v2/{REPO}/blobs/uploads/")
        resp = conn.getresponse()
        resp.read()
        location = resp.getheader("Location") or ""
        path = re.sub(r"^https?://[^/]+", "", location)
        sep = "&" if "?" in path else "?"
        conn.request(
            "PUT", f"{path}{sep}digest={digest}", body=data, headers={"Content-Type": "application/octet-stream"}
        )
        resp = conn.getresponse()
        resp.read()
        if resp.status != 201:
            raise RuntimeError(f"blob push failed: {resp.status}")
        return digest

    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": push_blob(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": push_blob(layer), "size": len(layer)}
            ],
        }
    ).encode()
    conn.request("PUT", f"/v2/{REPO}/manifests/latest", body=manifest, headers={"Content-Type": MANIFEST_TYPE})
    resp = conn.getresponse()
    resp.read()
    if resp.status != 201:
        raise RuntimeError(f"manifest push failed: {resp.status}")
    conn.close()
    return "sha256:" + hashlib.sha256(layer).hexdigest()


def wrk(url: str, seconds: int, connections: int, accept: str | None = None) -> tuple[float, float]:
    """(requests/s, MB/s) as wrk measures them."""
    cmd = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    if accept:
        cmd += ["-H", f"Accept: {accept}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    rate, unit = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out).groups()  # type: ignore[union-attr]
    scale = {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1, "GB": 1024}[unit]
    if re.search(r"Non-2xx or 3xx responses", out):
        raise RuntimeError(f"errors while benchmarking {url}:\n{out}")
    return rps, float(rate) * scale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--blob-mb", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    starters = {"dockyard": start_dockyard}
    if shutil.which("docker-registry"):
        starters["distribution"] = start_distribution
    else:
        print("docker-registry not installed (apt-get install docker-registry): dockyard only", file=sys.stderr)
    layer = os.urandom(args.blob_mb << 20)
    base = Path(tempfile.mkdtemp(prefix="dy-regbench-"))
    procs: list[subprocess.Popen] = []
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in starters}
    try:
        urls = {}
        for name, start in starters.items():
            port = free_port()
            procs.append(start(base, port))
            wait_listening(port, procs[-1])
            digest = push_image(port, layer)
            urls[name] = (
                f"http://127.0.0.1:{port}/v2/{REPO}/manifests/latest",
                f"http://127.0.0.1:{port}/v2/{REPO}/blobs/{digest}",
            )
            wrk(urls[name][0], 1, args.connections, MANIFEST_TYPE)  # warm-up
        for _ in range(args.rounds):  # interleaved, so machine noise hits both servers alike
            for name, (manifest_url, blob_url) in urls.items():
                manifest_rps, _ = wrk(manifest_url, args.seconds, args.connections, MANIFEST_TYPE)
                blob_rps, blob_mbs = wrk(blob_url, args.seconds, args.connections)
                samples[name].append((manifest_rps, blob_mbs, blob_rps))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(base, ignore_errors=True)
    rows = {name: tuple(statistics.median(s[i] for s in runs) for i in range(3)) for name, runs in samples.items()}
    print(
        f"{args.connections} concurrent connections, {args.rounds} interleaved rounds of {args.seconds}s "
        f"(median), {args.blob_mb} MB blob"
    )
    print(f"{'server':<14}{'manifest GET req/s':>20}{'blob GET MB/s':>16}{'blob GET req/s':>16}")
    for name, (manifest_rps, blob_mbs, blob_rps) in rows.items():
        print(f"{name:<14}{manifest_rps:>20.0f}{blob_mbs:>16.0f}{blob_rps:>16.1f}")
    if len(rows) == 2:
        ours, theirs = rows["dockyard"], rows["distribution"]
        print(f"{'ratio':<14}{ours[0] / theirs[0]:>20.2f}{ours[1] / theirs[1]:>16.2f}{ours[2] / theirs[2]:>16.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
