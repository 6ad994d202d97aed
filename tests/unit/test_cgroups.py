"""Real cgroups (as root): create, limits, membership, stats, freeze, OOM, kill, remove."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid

import pytest

from dockyard.runtime.cgroups import CgroupV1, CgroupV2, is_cgroup2, open_cgroup, v1_mountpoints

BUSYBOX = "/bin/busybox"
UNIFIED = "/sys/fs/cgroup/unified"


@pytest.fixture
def parent():
    name = f"dockyard-test-{uuid.uuid4().hex[:12]}"
    yield name
    roots = [UNIFIED, *set(v1_mountpoints().values())] if not is_cgroup2() else ["/sys/fs/cgroup"]
    for root in roots:
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rmdir(os.path.join(root, name))


@pytest.fixture
def sleeper():
    procs: list[subprocess.Popen] = []

    def spawn(cgroup=None, argv=(BUSYBOX, "sleep", "60")):
        proc = subprocess.Popen(list(argv), preexec_fn=cgroup.join if cgroup else None)
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


def _proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_rejects_escaping_paths():
    with pytest.raises(ValueError):
        open_cgroup("/dockyard/../../etc")
    with pytest.raises(ValueError):
        open_cgroup("/")


@pytest.mark.skipif(is_cgroup2(), reason="cgroup v1 host only")
def test_v1_lifecycle(parent, sleeper):
    cg = open_cgroup(f"/{parent}/{uuid.uuid4().hex}")
    assert isinstance(cg, CgroupV1)
    try:
        cg.create()
        cg.apply({"memory": {"limit": 64 << 20, "swap": 64 << 20}, "pids": {"limit": 10},
                  "cpu": {"shares": 256, "quota": 50000, "period": 100000}})  # fmt: skip
        mem = cg.dir("memory")
        with open(f"{mem}/memory.limit_in_bytes") as f:
            assert int(f.read()) == 64 << 20
        with open(f"{cg.dir('pids')}/pids.max") as f:
            assert f.read().strip() == "10"
        with open(f"{cg.dir('cpu')}/cpu.cfs_quota_us") as f:
            assert f.read().strip() == "50000"
        proc = sleeper(cg)
        assert cg.pids() == [proc.pid]
        with open(f"/proc/{proc.pid}/cgroup") as f:
            assert f"memory:{cg.path}" in f.read()  # really left the caller's nested memory cgroup
        stats = cg.stats()
        assert stats["memory"]["limit"] == 64 << 20 and stats["memory"]["usage"] > 0
        assert stats["pids"] == {"current": 1, "limit": 10}
        assert stats["cpu"]["usage_ns"] > 0
        assert set(stats["blkio"]) == {"read_bytes", "write_bytes"}
        cg.freeze()
        assert _proc_state(proc.pid) in ("D", "S")
        with open(f"{cg.dir('freezer')}/freezer.state") as f:
            assert f.read().strip() == "FROZEN"
        cg.thaw()
        cg.kill_all(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert not cg.oom_killed()
    finally:
        cg.remove()
    assert not any(os.path.exists(d) for d in cg._dirs())
    cg.remove()  # idempotent


@pytest.mark.skipif(is_cgroup2(), reason="cgroup v1 host only")
def test_v1_oom_kill_and_remove_with_members(parent, sleeper):
    cg = open_cgroup(f"/{parent}/{uuid.uuid4().hex}")
    try:
        cg.create()
        cg.apply({"memory": {"limit": 16 << 20, "swap": 16 << 20}})
        hog = sleeper(cg, (BUSYBOX, "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"))
        assert hog.wait(timeout=20) == -signal.SIGKILL
        assert cg.oom_killed()
        sleeper(cg)
        sleeper(cg)
        assert len(cg.pids()) == 2
    finally:
        cg.remove()  # kills the stragglers itself
    assert not any(os.path.exists(d) for d in cg._dirs())


@pytest.mark.skipif(not os.path.exists(f"{UNIFIED}/cgroup.procs"), reason="no cgroup2 hierarchy mounted")
def test_v2_membership_freeze_kill_remove(parent, sleeper):
    root = "/sys/fs/cgroup" if is_cgroup2() else UNIFIED
    cg = open_cgroup(f"/{parent}/{uuid.uuid4().hex}", root=root, version=2)
    assert isinstance(cg, CgroupV2)
    try:
        cg.create()
        proc = sleeper(cg)
        assert cg.pids() == [proc.pid]
        cg.freeze()
        with open(f"{cg.dir}/cgroup.events") as f:
            assert "frozen 1" in f.read()
        cg.thaw()
        cg.kill_all()
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert cg.pids() == []
    finally:
        cg.remove()
    assert not os.path.exists(cg.dir)
