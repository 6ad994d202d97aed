"""A real dockyard daemon on a temporary data root and socket, plus a busybox image imported into it.

Teardown removes every container (force), stops the daemon, and then checks and cleans the host:
no mounts under the data root, no monitor processes, no dockyard cgroups of ours.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon import DaemonEnv, host_cleanup
from tests.helpers.rootfs import busybox_rootfs_tar

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def dockyard_env() -> Iterator[DaemonEnv]:
    if os.geteuid() != 0:
        pytest.skip("the integration tests run containers and need root")
    base = Path(tempfile.mkdtemp(prefix="dy-", dir="/tmp"))
    env = DaemonEnv(base, base / "data", base / "run", base / "d.sock")
    try:
        env.start()
        yield env
    finally:
        if env.proc is None:
            with contextlib.suppress(Exception):
                env.start()
        try:
            ids = env.cli("ps", "-aq").stdout.decode().split()
            if ids:
                env.cli("rm", "-f", *ids, timeout=120)
        finally:
            env.stop()
            host_cleanup(env)
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def busybox(dockyard_env: DaemonEnv) -> str:
    """Import the busybox rootfs as busybox:latest (CMD sh), as `docker import` would."""
    tar = busybox_rootfs_tar(dockyard_env.base / "busybox.tar", dockyard_env.base / "build")
    dockyard_env.out("import", "--change", 'CMD ["sh"]', str(tar), "busybox:latest")
    shutil.rmtree(dockyard_env.base / "build", ignore_errors=True)
    return "busybox:latest"


@pytest.fixture
def dy(dockyard_env: DaemonEnv, busybox: str) -> Iterator[DaemonEnv]:
    """The daemon env for one test; removes the containers the test created."""
    before = set(dockyard_env.cli("ps", "-aq", "--no-trunc").stdout.decode().split())
    yield dockyard_env
    if dockyard_env.proc is None:
        dockyard_env.start()
    after = set(dockyard_env.cli("ps", "-aq", "--no-trunc").stdout.decode().split())
    new = sorted(after - before)
    if new:
        dockyard_env.cli("rm", "-f", *new, timeout=120)
