"""exec, run -it, exec -it and attach against dockyard: the real docker CLI, the docker SDK and our CLI.

Interactive flows run under a pseudo-terminal (pexpect); every spawned process is closed (and its
pty fd with it) in a finally block; containers are removed by the `dy` fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.waiting import wait_until

DOCKER = "/usr/local/bin/docker"
pytestmark = pytest.mark.skipif(not os.path.exists(DOCKER), reason="the docker CLI is not installed")

PROMPT = "/ # "


@pytest.fixture
def docker_env(dy, tmp_path: Path) -> dict[str, str]:
    env = dict(dy.env())
    env.update(DOCKER_HOST=dy.host, DOCKER_CONFIG=str(tmp_path / "docker-config"), TERM="xterm")
    return env


def docker(env: dict[str, str], *args: str, input: bytes | None = None, timeout: float = 60):  # type: ignore[no-untyped-def]
    import subprocess

    return subprocess.run([DOCKER, *args], input=input, capture_output=True, env=env, timeout=timeout)


@pytest.fixture
def running(dy) -> str:  # type: ignore[no-untyped-def]
    """A container sleeping in the background."""
    return dy.out("run", "-d", "--name", f"ex-{uuid.uuid4().hex[:10]}", "busybox", "sleep", "1000").strip()


@pytest.fixture
def spawn() -> Iterator[Callable[..., object]]:
    """pexpect.spawn under a pty of a known size; closed (pty fd too) whatever happens."""
    import pexpect

    children: list[pexpect.spawn] = []

    def start(argv: list[str], env: dict[str, str], rows: int = 24, cols: int = 80) -> pexpect.spawn:
        child = pexpect.spawn(argv[0], argv[1:], env=env, dimensions=(rows, cols), timeout=20)
        children.append(child)
        return child

    try:
        yield start
    finally:
        for child in children:
            child.close(force=True)


def dockyard_argv() -> list[str]:
    return [sys.executable, "-m", "dockyard"]


# ------------------------------------------------------------------------------------- exec


def test_exec_output_exit_code_and_inspect(dy, docker_env, running) -> None:  # type: ignore[no-untyped-def]
    out = docker(docker_env, "exec", running, "echo", "hi")
    assert (out.returncode, out.stdout) == (0, b"hi\n")
    assert docker(docker_env, "exec", running, "sh", "-c", "exit 3").returncode == 3

    from dockyard.client.api import APIClient

    api = APIClient(dy.host)
    exec_id = api.exec_create(
        running, {"Cmd": ["sh", "-c", "echo out; echo err >&2; exit 7"], "AttachStdout": True, "AttachStderr": True}
    )["Id"]
    before = api.exec_inspect(exec_id)
    assert before["Running"] is False and before["ExitCode"] is None and before["ContainerID"] == running
    conn = api.exec_start(exec_id, {"Detach": False, "Tty": False})
    assert conn is not None and conn.multiplexed
    frames = list(conn.iter_output())
    conn.close()
    assert (1, b"out\n") in frames and (2, b"err\n") in frames
    assert wait_until(lambda: api.exec_inspect(exec_id)["ExitCode"] == 7)
    after = api.exec_inspect(exec_id)
    assert after["Running"] is False and after["Pid"] > 0
    assert after["ProcessConfig"] == {
        "tty": False,
        "entrypoint": "sh",
        "arguments": ["-c", "echo out; echo err >&2; exit 7"],
        "privileged": False,
    }
    # When the container stops its execs are forgotten, as moby's Cleanup does (no unbounded growth).
    dy.out("kill", running)
    from dockyard.client.errors import APIError

    def forgotten() -> bool:
        try:
            api.exec_inspect(exec_id)
        except APIError as exc:
            return exc.status == 404 and "No such exec instance" in str(exc)
        return False

    assert wait_until(forgotten)


def test_exec_env_workdir_user_privileged(docker_env, running) -> None:  # type: ignore[no-untyped-def]
    out = docker(docker_env, "exec", "-e", "FOO=bar", "-w", "/tmp", running, "sh", "-c", "echo $FOO $(pwd)")
    assert out.stdout == b"bar /tmp\n"
    assert docker(docker_env, "exec", "-u", "app", running, "id", "-u").stdout == b"1000\n"
    assert docker(docker_env, "exec", "-u", "1000", running, "id", "-u").stdout == b"1000\n"

    def cap_eff(*flags: str) -> int:
        out = docker(docker_env, "exec", *flags, running, "grep", "CapEff", "/proc/self/status").stdout
        return int(out.split()[1], 16)

    with open("/proc/self/status") as f:
        ours = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    assert cap_eff("--privileged") == ours  # every capability there is to give
    assert cap_eff() != ours and cap_eff() & ~ours == 0  # docker's default set only
    bad = docker(docker_env, "exec", "-u", "nosuchuser", running, "true")
    assert bad.returncode != 0 and b"nosuchuser" in bad.stderr


def test_exec_joins_the_container_namespaces_and_cgroup(dy, docker_env, running) -> None:  # type: ignore[no-untyped-def]
    ps = docker(docker_env, "exec", running, "ps", "-o", "pid,args").stdout.decode().splitlines()
    assert any(line.split()[:2] == ["1", "sleep"] for line in ps[1:]), ps
    kinds = ["pid", "mnt", "uts", "net", "ipc"]
    script = f"for k in {' '.join(kinds)}; do readlink /proc/self/ns/$k; readlink /proc/1/ns/$k; done"
    links = docker(docker_env, "exec", running, "sh", "-c", script).stdout.decode().split()
    assert len(links) == 2 * len(kinds) and links[0::2] == links[1::2], links
    host_ns = [os.readlink(f"/proc/self/ns/{k}") for k in kinds]
    assert all(ours != theirs for ours, theirs in zip(host_ns, links[0::2], strict=True))
    hostname = json.loads(dy.out("inspect", running))[0]["Config"]["Hostname"]
    assert docker(docker_env, "exec", running, "hostname").stdout.decode().strip() == hostname
    docker(docker_env, "exec", running, "sh", "-c", "echo seen > /tmp/from-exec")
    assert docker(docker_env, "exec", running, "cat", "/tmp/from-exec").stdout == b"seen\n"
    assert running in docker(docker_env, "exec", running, "cat", "/proc/self/cgroup").stdout.decode()


def test_exec_errors_match_docker(dy, docker_env, running) -> None:  # type: ignore[no-untyped-def]
    missing = docker(docker_env, "exec", running, "nosuch")
    assert missing.returncode == 127
    assert (
        b'OCI runtime exec failed: exec failed: unable to start container process: exec: "nosuch": '
        b"executable file not found in $PATH: unknown"
    ) in missing.stdout + missing.stderr
    assert docker(docker_env, "exec", running, "/etc").returncode == 126
    dy.out("kill", running)
    stopped = docker(docker_env, "exec", running, "true")
    assert stopped.returncode == 1
    assert f"container {running} is not running".encode() in stopped.stderr

    from dockyard.client.api import APIClient
    from dockyard.client.errors import APIError

    with pytest.raises(APIError) as info:
        APIClient(dy.host).exec_create(running, {"Cmd": ["true"]})
    assert info.value.status == 409


def test_stdin_and_half_close(docker_env, running) -> None:  # type: ignore[no-untyped-def]
    run = docker(docker_env, "run", "-i", "--rm", "busybox", "cat", input=b"hi\n")
    assert (run.returncode, run.stdout) == (0, b"hi\n")
    ex = docker(docker_env, "exec", "-i", running, "cat", input=b"hi\n")
    assert (ex.returncode, ex.stdout) == (0, b"hi\n")
    big = os.urandom(300_000).hex().encode()
    ex = docker(docker_env, "exec", "-i", running, "wc", "-c", input=big)
    assert ex.stdout.strip() == str(len(big)).encode()


def test_client_hanging_up_does_not_block_or_leak(dy, running) -> None:  # type: ignore[no-untyped-def]
    from dockyard.client.api import APIClient

    api = APIClient(dy.host)
    daemon_fds = f"/proc/{dy.proc.pid}/fd"
    baseline = len(os.listdir(daemon_fds))
    script = "i=0; while [ $i -lt 40 ]; do echo tick; i=$((i+1)); sleep 0.05; done; exit 9"
    exec_id = api.exec_create(
        running, {"Cmd": ["sh", "-c", script], "AttachStdin": True, "AttachStdout": True, "AttachStderr": True}
    )["Id"]
    conn = api.exec_start(exec_id, {"Detach": False, "Tty": False})
    assert conn is not None
    assert next(conn.iter_output()) == (1, b"tick\n")
    conn.close()  # hang up mid-stream, stdin still open
    assert api.exec_inspect(exec_id)["Running"]  # the daemon answers meanwhile
    assert wait_until(lambda: api.exec_inspect(exec_id)["ExitCode"] == 9)
    assert wait_until(lambda: len(os.listdir(daemon_fds)) <= baseline, timeout=5), os.listdir(daemon_fds)


# ------------------------------------------------------------------------------------- tty


def _interactive_shell_checks(child, exit_code: int = 3) -> None:  # type: ignore[no-untyped-def]
    """Prompt, terminal size and its change, ^C reaching the foreground process, exit code."""
    child.expect_exact(PROMPT)
    child.sendline("stty size")
    child.expect_exact("24 80")
    child.expect_exact(PROMPT)
    child.setwinsize(33, 97)  # SIGWINCH to the client → resize API call → TIOCSWINSZ
    for _ in range(50):
        child.sendline("stty size")
        if child.expect_exact(["33 97", "24 80"]) == 0:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the terminal size did not follow the resize")
    child.expect_exact(PROMPT)
    child.sendline("sleep 100")
    time.sleep(0.5)
    child.sendintr()
    child.expect_exact(PROMPT, timeout=10)
    child.sendline("echo status-$?")
    child.expect_exact("status-130")
    child.expect_exact(PROMPT)
    child.sendline(f"exit {exit_code}")
    child.expect(__import__("pexpect").EOF)
    child.close()
    assert child.exitstatus == exit_code


@pytest.mark.parametrize("cli", ["docker", "dockyard"])
def test_run_it(cli, dy, docker_env, spawn) -> None:  # type: ignore[no-untyped-def]
    argv = [DOCKER] if cli == "docker" else dockyard_argv()
    child = spawn([*argv, "run", "-it", "--rm", "busybox", "sh"], docker_env)
    _interactive_shell_checks(child)


@pytest.mark.parametrize("cli", ["docker", "dockyard"])
def test_exec_it(cli, dy, docker_env, spawn, running) -> None:  # type: ignore[no-untyped-def]
    argv = [DOCKER] if cli == "docker" else dockyard_argv()
    child = spawn([*argv, "exec", "-it", running, "sh"], docker_env)
    _interactive_shell_checks(child, exit_code=4)
    assert json.loads(dy.out("inspect", running))[0]["State"]["Running"]


@pytest.mark.parametrize("cli", ["docker", "dockyard"])
def test_attach_and_detach_keys(cli, dy, docker_env, spawn) -> None:  # type: ignore[no-untyped-def]
    name = f"att-{uuid.uuid4().hex[:10]}"
    dy.out("run", "-dit", "--name", name, "busybox", "sh")
    argv = [DOCKER] if cli == "docker" else dockyard_argv()
    child = spawn([*argv, "attach", name], docker_env)
    time.sleep(0.5)
    child.sendline("echo attached-$((40+2))")
    child.expect_exact("attached-42")
    child.send("\x10\x11")  # ctrl-p ctrl-q
    child.expect_exact("read escape sequence")  # docker attach reports the detach, exit status 1
    child.expect(__import__("pexpect").EOF)
    child.close()
    assert child.exitstatus == 1
    assert json.loads(dy.out("inspect", name))[0]["State"]["Running"]


def test_dockyard_exec_flags(dy, running) -> None:  # type: ignore[no-untyped-def]
    assert (
        dy.out("exec", "-e", "A=b", "-w", "/tmp", "-u", "app", running, "sh", "-c", "echo $A $(pwd) $(id -u)")
        == "b /tmp 1000\n"
    )
    assert dy.cli("exec", running, "sh", "-c", "exit 5").returncode == 5
    missing = dy.cli("exec", running, "nosuch")
    assert missing.returncode == 127 and b"executable file not found" in missing.stdout
    assert dy.out("exec", "-i", running, "cat", input=b"piped\n") == "piped\n"
    assert dy.cli("exec", "-d", running, "touch", "/tmp/detached").returncode == 0
    assert wait_until(lambda: dy.cli("exec", running, "test", "-e", "/tmp/detached").returncode == 0)


# ------------------------------------------------------------------------------------- SDK


def test_docker_sdk(dy) -> None:  # type: ignore[no-untyped-def]
    import docker as docker_sdk

    from dockyard.client.streams import iter_frames

    client = docker_sdk.DockerClient(base_url=dy.host)
    try:
        container = client.containers.run("busybox", "sh", stdin_open=True, tty=True, detach=True)
        try:
            result = container.exec_run(["sh", "-c", "echo out; echo err >&2; exit 4"], demux=True)
            assert result.exit_code == 4 and result.output == (b"out\n", b"err\n")
            assert container.exec_run("echo tty", tty=True).output == b"tty\r\n"
            sock = container.exec_run("cat", stdin=True, socket=True).output
            raw = sock._sock
            raw.sendall(b"via socket\n")
            raw.shutdown(__import__("socket").SHUT_WR)
            frames = list(iter_frames(raw.recv))
            raw.close()
            assert frames == [(1, b"via socket\n")]
        finally:
            container.remove(force=True)
    finally:
        client.close()


def test_exec_under_runc(dy, docker_env) -> None:  # type: ignore[no-untyped-def]
    """The monitor's exec op through `runc exec --process` (pipes, and a console socket for -t)."""
    if not shutil.which("runc"):
        pytest.skip("runc is not installed")
    cid = dy.out("run", "-d", "--runtime", "runc", "busybox", "sleep", "1000").strip()
    out = docker(docker_env, "exec", cid, "sh", "-c", "echo out; echo err >&2; exit 6")
    assert (out.returncode, out.stdout, out.stderr) == (6, b"out\n", b"err\n")
    assert docker(docker_env, "exec", "-i", cid, "cat", input=b"in\n").stdout == b"in\n"
    tty = docker(docker_env, "exec", "-t", cid, "sh", "-c", "tty; id -u")
    assert tty.stdout.split() == [b"/dev/pts/0", b"0"]
    assert docker(docker_env, "exec", "-u", "app", cid, "id", "-u").stdout == b"1000\n"
    missing = docker(docker_env, "exec", cid, "nosuch")
    assert missing.returncode == 127 and b"executable file not found" in missing.stdout
