"""The builtin runtime executing real bundles as root: namespaces, mounts, limits, users, errors.

The test process makes itself a child subreaper (like the monitor) and reaps each init.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from dockyard.runtime.base import RuntimeFailure, Stdio
from dockyard.runtime.builtin import linux
from dockyard.runtime.builtin.runtime import BuiltinRuntime
from dockyard.runtime.cgroups import open_cgroup, v1_mountpoints
from dockyard.runtime.spec import build_spec
from dockyard.util.fs import write_json
from tests.helpers.rootfs import make_busybox_rootfs

PARENT = f"dockyard-test-{uuid.uuid4().hex[:12]}"
DEFAULT_CAP_EFF = "00000000a80425fb"


@pytest.fixture(scope="module", autouse=True)
def subreaper():
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    yield
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 0)
    for root in {*v1_mountpoints().values(), "/sys/fs/cgroup/unified"}:  # runc also uses the hybrid v2 tree
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(root, PARENT))


@pytest.fixture(scope="module")
def rootfs_template(tmp_path_factory):
    return make_busybox_rootfs(tmp_path_factory.mktemp("template") / "rootfs")


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code  # the monitor turns a signal into 128+n


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode()


class Harness:
    """One container: bundle on a tmp dir, runtime state, pipes for stdout/stderr."""

    def __init__(self, tmp: Path, template: Path) -> None:
        self.tmp = tmp
        self.id = uuid.uuid4().hex
        self.bundle = tmp / "bundle"
        self.rootfs = self.bundle / "rootfs"
        shutil.copytree(template, self.rootfs, symlinks=True)
        self.runtime = BuiltinRuntime(str(tmp / "state"))
        self.cgroups_path = f"/{PARENT}/{self.id}"
        self.pids: list[int] = []

    def create(self, cmd: list[str], config: dict | None = None, host: dict | None = None) -> int:
        container = {"Id": self.id, "Path": cmd[0], "Args": cmd[1:], "Config": config or {}, "HostConfig": host or {}}
        write_json(self.bundle / "config.json", build_spec(container, str(self.rootfs), cgroups_path=self.cgroups_path))
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        try:
            pid = self.runtime.create(self.id, str(self.bundle), Stdio(None, out_w, err_w))
        finally:
            os.close(out_w)
            os.close(err_w)
        self.pids.append(pid)
        return pid

    def wait(self, pid: int) -> tuple[int, str, str]:
        out, err = _read_all(self.out_r), _read_all(self.err_r)
        _, status = os.waitpid(pid, 0)
        self.pids.remove(pid)
        return _exit_code(status), out, err

    def run(self, cmd: list[str], config: dict | None = None, host: dict | None = None) -> tuple[int, str, str]:
        pid = self.create(cmd, config, host)
        self.runtime.start(self.id)
        return self.wait(pid)

    def cleanup(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.runtime.delete(self.id)
        for fd in (getattr(self, "out_r", None), getattr(self, "err_r", None)):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


@pytest.fixture
def box(tmp_path, rootfs_template):
    harness = Harness(tmp_path, rootfs_template)
    try:
        yield harness
    finally:
        harness.cleanup()
    # Nothing left behind: no mounts of the rootfs, no cgroup, no state.
    with open("/proc/self/mountinfo") as f:
        assert str(harness.rootfs) not in f.read()
    assert not any(os.path.exists(mp + harness.cgroups_path) for mp in v1_mountpoints().values())
    assert not (tmp_path / "state" / harness.id).exists()


def test_pid1_hostname_proc_sys_cwd_env(box):
    script = ("echo pid=$$; hostname; ps -o pid | tail -n +2 | tr -d ' ' | sort -n | tr '\\n' ,; echo;"
              " pwd; echo foo=$FOO home=$HOME; touch /sys/x 2>&1; grep -c . /proc/self/mounts")  # fmt: skip
    code, out, err = box.run(["sh", "-c", script], {"Hostname": "box", "WorkingDir": "/var/www", "Env": ["FOO=bar"]})
    lines = out.splitlines()
    assert code == 0, err
    assert lines[0] == "pid=1"
    assert lines[1] == "box"
    pids = [int(p) for p in lines[2].strip(",").split(",")]
    assert pids[0] == 1 and max(pids) < 10  # only the shell and the ps pipeline: no host processes
    assert lines[3] == "/var/www"
    assert lines[4] == "foo=bar home=/root"
    assert "Read-only file system" in lines[5]


def test_user_app(box):
    code, out, _ = box.run(["sh", "-c", "id; grep CapEff /proc/self/status; echo $HOME"], {"User": "app"})
    assert code == 0
    assert out.startswith("uid=1000(app) gid=1000(app) groups=10(wheel)"), out
    assert "CapEff:\t0000000000000000" in out
    assert out.splitlines()[-1] == "/home/app"


def test_default_capabilities(box):
    code, out, _ = box.run(["grep", "Cap", "/proc/self/status"])
    caps = dict(line.split(":\t") for line in out.splitlines())
    assert code == 0
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == DEFAULT_CAP_EFF
    assert caps["CapInh"] == caps["CapAmb"] == "0000000000000000"


def test_cap_drop_all_and_no_new_privileges(box):
    host = {"CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"]}
    code, out, _ = box.run(["grep", "-E", "CapEff|CapBnd|NoNewPrivs", "/proc/self/status"], host=host)
    assert code == 0
    assert "CapEff:\t0000000000000000" in out and "CapBnd:\t0000000000000000" in out
    assert "NoNewPrivs:\t1" in out


def test_memory_limit_kills_with_sigkill(box):
    code, _, _ = box.run(["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"], host={"Memory": 32 << 20})
    assert code == 137
    assert open_cgroup(box.cgroups_path).oom_killed()


def test_memory_limit_allows_small_allocations(box):
    code, _, err = box.run(["dd", "if=/dev/zero", "of=/dev/null", "bs=4M", "count=1"], host={"Memory": 32 << 20})
    assert code == 0, err


def test_pids_limit(box):
    script = "i=0; while [ $i -lt 10 ]; do sleep 1 & i=$((i+1)); done; wait"
    _, _, err = box.run(["sh", "-c", script], host={"PidsLimit": 4})
    assert "can't fork" in err or "Resource temporarily unavailable" in err, err


def test_readonly_rootfs(box):
    script = "touch /x 2>&1; touch /dev/shm/ok && echo shm-ok"
    _, out, _ = box.run(["sh", "-c", script], host={"ReadonlyRootfs": True})
    assert "Read-only file system" in out
    assert "shm-ok" in out
    assert not (box.rootfs / "x").exists()


def test_masked_and_readonly_paths(box):
    script = "wc -c < /proc/keys; (echo 1 > /proc/sys/kernel/domainname) 2>&1; ls /sys/firmware | wc -l"
    _, out, _ = box.run(["sh", "-c", script])
    lines = out.split("\n")
    assert lines[0].strip() == "0"
    assert "Read-only file system" in lines[1]
    assert lines[2].strip() == "0"


def test_missing_binary_is_127(box):
    with pytest.raises(RuntimeFailure) as info:
        box.create(["nosuch"])
    assert info.value.exit_code == 127
    assert 'exec: "nosuch": executable file not found in $PATH' in info.value.message


def test_non_executable_is_126(box):
    with pytest.raises(RuntimeFailure) as info:
        box.create(["/etc/passwd"])
    assert info.value.exit_code == 126
    assert 'exec: "/etc/passwd": permission denied' in info.value.message


def test_unknown_user_never_creates(box):
    with pytest.raises(RuntimeFailure, match="unable to find user ghost"):
        box.create(["true"], {"User": "ghost"})


def test_lifecycle_state_kill_and_exec(box):
    pid = box.create(["sleep", "60"], {"Hostname": "execbox"})
    assert box.runtime.state(box.id)["status"] == "created"
    assert box.runtime.state(box.id)["pid"] == pid
    box.runtime.start(box.id)
    assert box.runtime.state(box.id)["status"] == "running"
    out_r, out_w = os.pipe()
    try:
        exec_pid = box.runtime.exec_process(
            box.id,
            {"args": ["sh", "-c", "echo $$; hostname; tr '\\0' ' ' < /proc/1/cmdline; echo; id -u"],
             "env": ["PATH=/bin"], "cwd": "/tmp", "user": {"uid": 1000, "gid": 1000}},
            Stdio(None, out_w, out_w),
        )  # fmt: skip
        os.close(out_w)
        out = _read_all(out_r)
        assert os.waitstatus_to_exitcode(os.waitpid(exec_pid, 0)[1]) == 0
    finally:
        os.close(out_r)
    lines = out.splitlines()
    assert lines[0] != "1" and lines[1] == "execbox"
    assert lines[2].startswith("sleep")
    assert lines[3] == "1000"
    with pytest.raises(RuntimeFailure) as info:
        box.runtime.exec_process(box.id, {"args": ["nosuch"], "env": ["PATH=/bin"], "cwd": "/"}, Stdio(None, 1, 2))
    assert info.value.exit_code == 127
    box.runtime.kill(box.id, signal.SIGKILL)
    code, _, _ = box.wait(pid)
    assert code == 137
    assert box.runtime.state(box.id)["status"] == "stopped"
    box.runtime.delete(box.id)
    box.runtime.delete(box.id)  # idempotent


def test_stdin_and_start_after_delay(box):
    pid = box.create(["sh", "-c", "echo started"])
    time.sleep(0.2)
    assert os.waitpid(pid, os.WNOHANG) == (0, 0)  # waits for start
    box.runtime.start(box.id)
    code, out, _ = box.wait(pid)
    assert (code, out) == (0, "started\n")


@pytest.mark.skipif(not os.path.exists("/usr/sbin/runc"), reason="runc not installed")
def test_runc_runs_generated_spec(tmp_path, rootfs_template):
    bundle = tmp_path / "bundle"
    shutil.copytree(rootfs_template, bundle / "rootfs", symlinks=True)
    cid = f"dockyard-test-{uuid.uuid4().hex[:12]}"
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # runc cannot raise it without CAP_SYS_RESOURCE
    nofile = {"Name": "nofile", "Soft": hard, "Hard": hard}
    container = {"Id": cid, "Path": "sh", "Args": ["-c", "echo pid=$$; hostname; grep CapEff /proc/self/status"],
                 "Config": {"Hostname": "runcbox"},
                 "HostConfig": {"Memory": 64 << 20, "Ulimits": [nofile]}}  # fmt: skip
    spec = build_spec(container, str(bundle / "rootfs"), cgroups_path=f"/{PARENT}/{cid}")
    write_json(bundle / "config.json", spec)
    root = tmp_path / "runc-state"
    try:
        result = subprocess.run(["/usr/sbin/runc", "--root", str(root), "run", "-b", str(bundle), cid],
                                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    finally:
        subprocess.run(["/usr/sbin/runc", "--root", str(root), "delete", "-f", cid], capture_output=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["pid=1", "runcbox", f"CapEff:\t{DEFAULT_CAP_EFF}"]
