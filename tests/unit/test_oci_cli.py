"""OCICliRuntime against the real runc: lifecycle, console socket, error mapping, cleanup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.runtime.base import RuntimeFailure, Stdio
from dockyard.runtime.monitor import become_subreaper, exit_code_from_status
from dockyard.runtime.oci_cli import OCICliRuntime, _last_error, exit_code_for
from tests.helpers.rootfs import make_busybox_rootfs

RUNC = "/usr/sbin/runc"
needs_runc = pytest.mark.skipif(not (os.path.exists(RUNC) and os.geteuid() == 0), reason="needs root and runc")


def test_exit_code_mapping_follows_docker() -> None:
    assert exit_code_for('exec: "x": executable file not found in $PATH') == 127
    assert exit_code_for("exec /bin/x: no such file or directory") == 127
    assert exit_code_for("exec /etc: permission denied") == 126
    assert exit_code_for("exec format error") == 126
    assert exit_code_for("cgroup setup failed") == 125


def test_last_error_from_runtime_log(tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    log.write_text(
        '{"level":"warning","msg":"ignored"}\nnot json\n'
        '{"level":"error","msg":"first"}\n{"level":"error","msg":"the real one"}\n'
    )
    assert _last_error(str(log)) == "the real one"
    assert _last_error(str(tmp_path / "missing.json")) == ""


@pytest.fixture
def bundle(tmp_path: Path) -> Callable[..., str]:
    rootfs = make_busybox_rootfs(tmp_path / "rootfs")
    subprocess.run([RUNC, "spec"], cwd=tmp_path, check=True)
    spec = json.loads((tmp_path / "config.json").read_text())

    def make(args: list[str], terminal: bool = False) -> str:
        spec["root"] = {"path": str(rootfs), "readonly": True}
        spec["process"]["args"] = args
        spec["process"]["terminal"] = terminal
        (tmp_path / "config.json").write_text(json.dumps(spec))
        return str(tmp_path)

    return make


@pytest.fixture
def runtime(tmp_path: Path):  # type: ignore[no-untyped-def]
    root = tmp_path / "runc-root"
    rt = OCICliRuntime("runc", str(root))
    ids: list[str] = []
    try:
        yield rt, ids
    finally:
        for cid in ids:
            subprocess.run([RUNC, "--root", str(root), "delete", "--force", cid], capture_output=True, check=False)
    left = sorted(p.name for p in root.iterdir()) if root.exists() else []
    assert not left, f"runtime state left behind: {left}"


def _in_subreaper_child(body: Callable[[], dict]) -> dict:
    """Run `body` in a forked child that is a subreaper (so it can reap the container's init)
    and return what it reports; the test process itself is never made a subreaper."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            become_subreaper()
            result = body()
        except BaseException as exc:
            result = {"exception": f"{type(exc).__name__}: {exc}"}
        os.write(write_end, json.dumps(result).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO on a pty once the container is gone
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@needs_runc
def test_lifecycle_with_pipes(bundle, runtime) -> None:  # type: ignore[no-untyped-def]
    rt, ids = runtime
    cid = f"dytest-{uuid.uuid4().hex[:12]}"
    ids.append(cid)
    path = bundle(["sh", "-c", "echo out; echo err >&2; exit 7"])

    def body() -> dict:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = rt.create(cid, path, Stdio(None, out_w, err_w))
        os.close(out_w)
        os.close(err_w)
        waiting = os.path.exists(f"/proc/{pid}")
        rt.start(cid)
        _, status = os.waitpid(pid, 0)
        result = {
            "out": _read_all(out_r).decode(),
            "err": _read_all(err_r).decode(),
            "code": exit_code_from_status(status),
            "waiting": waiting,
            "oom": rt.oom_killed(cid),
        }
        rt.delete(cid)
        rt.delete(cid)  # idempotent
        return result

    result = _in_subreaper_child(body)
    assert result == {"out": "out\n", "err": "err\n", "code": 7, "waiting": True, "oom": False}


@needs_runc
def test_terminal_via_console_socket_and_kill(bundle, runtime) -> None:  # type: ignore[no-untyped-def]
    rt, ids = runtime
    cid = f"dytest-{uuid.uuid4().hex[:12]}"
    ids.append(cid)
    path = bundle(["sh", "-c", "tty; exec sleep 100"], terminal=True)

    def body() -> dict:
        pid = rt.create(cid, path, Stdio(None, -1, -1, terminal=True))
        master = rt.take_console(cid)
        assert master is not None and rt.take_console(cid) is None
        is_tty = os.isatty(master)
        rt.start(cid)
        first = os.read(master, 100).decode()
        rt.kill(cid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(master)
        rt.delete(cid)
        return {"isatty": is_tty, "tty": first, "code": exit_code_from_status(status)}

    result = _in_subreaper_child(body)
    assert result == {"isatty": True, "tty": "/dev/pts/0\r\n", "code": 137}


@needs_runc
def test_create_failures_map_to_docker_codes(bundle, runtime) -> None:  # type: ignore[no-untyped-def]
    rt, ids = runtime
    for args, code, words in ((["nosuchcmd"], 127, "executable file not found"), (["/etc"], 126, "permission denied")):
        cid = f"dytest-{uuid.uuid4().hex[:12]}"
        ids.append(cid)
        with pytest.raises(RuntimeFailure) as info:
            rt.create(cid, bundle(args), Stdio(None, 1, 2))
        assert info.value.exit_code == code
        assert info.value.message.startswith("OCI runtime create failed: ")
        assert words in info.value.message


@needs_runc
def test_unknown_container_errors(runtime) -> None:  # type: ignore[no-untyped-def]
    rt, _ = runtime
    with pytest.raises(RuntimeFailure) as info:
        rt.kill("dytest-does-not-exist", signal.SIGTERM)
    assert "does not exist" in info.value.message or "not exist" in info.value.message
    with pytest.raises(RuntimeFailure):
        rt.start("dytest-does-not-exist")
    rt.delete("dytest-does-not-exist")  # nothing to release: no error
