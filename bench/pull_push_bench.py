"""Push then pull of a ~150 MB, 3-layer image over loopback, plus layer extraction speed.

- dockyard's registry client (in-process Pusher/Puller, vfs store) against Debian's `docker-registry`;
- the real docker (a private dockerd, see tests/helpers/dockerd.py) against the same registry, when present;
- extraction: dockyard's decompress + apply_tar vs `gzip -d | tar -x`.

    .venv/bin/python bench/pull_push_bench.py [--mb 150]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def layer_tar(path: Path, size: int, seed: int) -> None:
    """Half random (incompressible), half text (compressible): realistic gzip work."""
    rng = __import__("random").Random(seed)
    with tarfile.open(path, "w") as tar:
        for i in range(max(1, size // (4 << 20))):
            chunk = rng.randbytes(2 << 20) + (f"line {seed} {i}\n" * 120_000).encode()[: 2 << 20]
            info = tarfile.TarInfo(f"data/{seed}/{i}.bin")
            info.size = len(chunk)
            tar.addfile(info, io.BytesIO(chunk))


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def start_registry(base: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = base / "registry.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {base}/reg\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"127.0.0.1:{port}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=150)
    args = parser.parse_args()
    if shutil.which("docker-registry") is None:
        print("docker-registry is not installed (apt install docker-registry)")
        return 1
    from dockyard.distribution.client.pull import Puller
    from dockyard.distribution.client.push import Pusher
    from dockyard.distribution.client.registry import Registry
    from dockyard.image.compression import open_decompressed
    from dockyard.image.layer import apply_tar
    from dockyard.image.reference import parse_docker_ref
    from dockyard.image.store import ImageStore
    from dockyard.storage import open_snapshotter

    base = Path(tempfile.mkdtemp(prefix="dy-ppbench-"))
    proc, host = start_registry(base)
    rows: list[tuple[str, float]] = []
    try:
        src = ImageStore(base / "src", open_snapshotter(str(base / "src" / "storage"), "vfs"))
        diff_ids = []
        for i in range(3):
            path = base / f"layer{i}.tar"
            layer_tar(path, args.mb * (1 << 20) // 3, i)
            with open(path, "rb") as f:
                diff_ids.append(src.ingest_layer(f))
        config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        ref = f"{host}/bench/big:1"
        src.register(json.dumps(config).encode(), repo_tags=[ref])
        registry = Registry(host)
        rows.append(
            (
                "dockyard push (gzip + upload)",
                timed(lambda: Pusher(src, registry, lambda m: None).push(parse_docker_ref(ref))),
            )
        )
        dst = ImageStore(base / "dst", open_snapshotter(str(base / "dst" / "storage"), "vfs"))
        rows.append(
            (
                "dockyard pull (download + unpack)",
                timed(lambda: Puller(dst, Registry(host), lambda m: None).pull(parse_docker_ref(ref))),
            )
        )
        rows += docker_rows(base, src, ref)
        blob = dst.resolve(ref).layers[0].blob
        blob_path = dst.content.path(blob)

        # Extraction into tmpfs, best of 3 interleaved: the CPU cost of decompress + unpack, without
        # the disk (on this ext4 disk both are I/O bound and the ratio only measures the disk).
        scratch = Path(tempfile.mkdtemp(prefix="dyx-", dir="/dev/shm"))

        def dockyard_extract() -> None:
            target = scratch / "x1"
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            with open(blob_path, "rb") as raw, open_decompressed(raw) as stream:
                apply_tar(stream, str(target), whiteouts="delete")

        def gzip_tar() -> None:
            target = scratch / "x2"
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            subprocess.run(f"gzip -dc {blob_path} | tar -x -C {target}", shell=True, check=True)

        try:
            ours, theirs = [], []
            for _ in range(3):
                ours.append(timed(dockyard_extract))
                theirs.append(timed(gzip_tar))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        rows.append(("extract layer 0 (tmpfs): dockyard", min(ours)))
        rows.append(("extract layer 0 (tmpfs): gzip -d | tar -x", min(theirs)))
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(base, ignore_errors=True)
    width = max(len(name) for name, _ in rows)
    print(f"{'operation':<{width}}  seconds   ({args.mb} MB image, 3 layers, loopback)")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:7.2f}")
    return 0


def docker_rows(base: Path, store: object, ref: str) -> list[tuple[str, float]]:
    """The same image pushed and pulled by the real docker, when dockerd is installed."""
    from dockyard.image.archive import save
    from tests.helpers.dockerd import PrivateDockerd, dockerd_available

    if not dockerd_available() or os.geteuid() != 0:
        return []
    dockerd = PrivateDockerd(base / "dockerd")
    try:
        dockerd.start()
        archive = base / "image.tar"
        with open(archive, "wb") as out:
            save(store, [ref], out)  # type: ignore[arg-type]
        dockerd.run("load", "-i", str(archive), check=True)
        push = timed(lambda: dockerd.run("push", ref, check=True))
        dockerd.run("rmi", ref, check=True)
        pull = timed(lambda: dockerd.run("pull", ref, check=True))
        return [("docker push", push), ("docker pull", pull)]
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"docker comparison skipped: {exc}", file=sys.stderr)
        return []
    finally:
        dockerd.stop()


if __name__ == "__main__":
    raise SystemExit(main())
