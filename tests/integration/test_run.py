"""`dockyard run` end to end: real containers, isolation seen from inside, docker's exit codes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest


def test_run_echo(dy):
    proc = dy.cli("run", "--rm", "busybox", "echo", "hello from a container")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hello from a container\n"
    assert dy.out("ps", "-aq") == ""


def test_stdout_and_stderr_kept_apart(dy):
    proc = dy.cli("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert proc.stdout == b"out\n"
    assert proc.stderr == b"err\n"


def test_pid1_is_the_command_and_only_own_processes(dy):
    out = dy.out("run", "--rm", "busybox", "sh", "-c", "echo $$; ps -o pid= | wc -l")
    pid, count = out.split()
    assert pid == "1"
    # sh itself, ps and wc: the host's processes are not visible
    assert int(count) <= 4


def test_hostname_default_and_flag(dy):
    cid = dy.out("create", "busybox", "hostname").strip()
    dy.out("start", "-a", cid)
    assert dy.out("logs", cid).strip() == cid[:12]
    assert dy.out("run", "--rm", "--hostname", "web1", "busybox", "hostname").strip() == "web1"
    assert dy.out("run", "--rm", "busybox", "hostname").strip() != os.uname().nodename


def test_filesystem_isolation_copy_on_write(dy):
    a = dy.out("run", "-d", "busybox", "sh", "-c", "echo mine > /etc/marker; sleep 30").strip()
    try:
        time.sleep(0.3)
        sibling = dy.cli("run", "--rm", "busybox", "cat", "/etc/marker")
        assert sibling.returncode != 0
        fresh = dy.cli("run", "--rm", "busybox", "ls", "/etc")
        assert b"marker" not in fresh.stdout
    finally:
        dy.cli("rm", "-f", a)


def test_proc_and_sys(dy):
    out = dy.out(
        "run", "--rm", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; touch /sys/x 2>&1 || echo ro"
    )
    assert out.startswith("sh -c")
    assert "ro" in out


def test_env_workdir_user_entrypoint(dy, tmp_path: Path):
    env_file = tmp_path / "env"
    env_file.write_text("FROM_FILE=yes\n# comment\n")
    out = dy.out(
        "run",
        "--rm",
        "-e",
        "A=1",
        "--env-file",
        str(env_file),
        "-w",
        "/tmp",
        "-u",
        "app",
        "busybox",
        "sh",
        "-c",
        "echo $A $FROM_FILE $(pwd) $(id -u) $(id -g) $HOME",
    )
    assert out.split() == ["1", "yes", "/tmp", "1000", "1000", "/home/app"]
    out = dy.out("run", "--rm", "--entrypoint", "echo", "busybox", "via", "entrypoint")
    assert out == "via entrypoint\n"
    assert dy.out("run", "--rm", "-u", "1234:5678", "busybox", "id").startswith("uid=1234 gid=5678")


def test_read_only_root(dy):
    proc = dy.cli("run", "--rm", "--read-only", "busybox", "touch", "/x")
    assert proc.returncode == 1
    assert b"Read-only file system" in proc.stderr


def test_exit_codes(dy):
    assert dy.cli("run", "--rm", "busybox", "sh", "-c", "exit 3").returncode == 3
    missing = dy.cli("run", "--rm", "busybox", "nosuchcommand")
    assert missing.returncode == 127
    assert b"executable file not found" in missing.stderr
    not_exec = dy.cli("run", "--rm", "busybox", "/etc/passwd")
    assert not_exec.returncode == 126
    assert b"permission denied" in not_exec.stderr
    # PID 1 of a pid namespace ignores SIGKILL from inside it (as under docker): kill a child instead.
    killed = dy.cli("run", "--rm", "busybox", "sh", "-c", 'sh -c "kill -9 \\$\\$"; exit $?')
    assert killed.returncode == 137


def test_unknown_image_and_bad_flag(dy):
    proc = dy.cli("run", "--rm", "nosuchimage:1")
    assert proc.returncode == 125
    assert b"Unable to find image 'nosuchimage:1' locally" in proc.stderr
    bad = dy.cli("run", "--no-such-flag", "busybox")
    assert bad.returncode == 125
    assert b"unknown flag" in bad.stderr or b"unrecognized" in bad.stderr


def test_unknown_user(dy):
    proc = dy.cli("run", "--rm", "-u", "nobody2", "busybox", "true")
    assert proc.returncode != 0
    assert b"unable to find user nobody2" in proc.stderr


def test_detached_ps_logs_inspect(dy):
    cid = dy.out(
        "run",
        "-d",
        "--name",
        "logger",
        "-l",
        "tier=web",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo line$i; done; echo oops >&2; sleep 30",
    ).strip()
    assert len(cid) == 64
    deadline = time.time() + 5
    while "oops" not in dy.cli("logs", "logger").stderr.decode() and time.time() < deadline:
        time.sleep(0.1)
    logs = dy.cli("logs", "logger")
    assert logs.stdout.decode().split() == ["line1", "line2", "line3"]
    assert logs.stderr == b"oops\n"
    assert dy.out("logs", "--tail", "1", "logger") == ""  # the last line went to stderr
    assert dy.cli("logs", "--tail", "1", "logger").stderr == b"oops\n"
    stamped = dy.out("logs", "-t", "logger").splitlines()[0]
    assert stamped.endswith(" line1") and stamped[:4].isdigit() and "T" in stamped
    ps = dy.out("ps", "--format", "{{.ID}} {{.Names}} {{.Status}}")
    assert f"{cid[:12]} logger Up" in ps
    assert dy.out("ps", "-q", "--filter", "label=tier=web").strip() == cid[:12]
    assert dy.out("ps", "-q", "--filter", "label=tier=db").strip() == ""
    as_json = json.loads(dy.out("ps", "--format", "json").splitlines()[0])
    assert as_json["Names"] == "logger"
    inspect = json.loads(dy.out("inspect", "logger"))[0]
    assert inspect["Id"] == cid and inspect["State"]["Running"] is True and inspect["State"]["Pid"] > 0
    assert dy.out("inspect", "-f", "{{.State.Status}} {{.Name}}", "logger").strip() == "running /logger"
    dy.out("rename", "logger", "logger2")
    assert dy.out("inspect", "-f", "{{.Name}}", cid[:8]).strip() == "/logger2"


def test_stop_timeout_then_kill(dy):
    cid = dy.out("run", "-d", "busybox", "sleep", "100").strip()
    t0 = time.monotonic()
    dy.out("stop", "-t", "1", cid)
    elapsed = time.monotonic() - t0
    assert 0.9 <= elapsed < 6
    assert dy.out("inspect", "-f", "{{.State.ExitCode}}", cid).strip() == "137"
    status = dy.out("ps", "-a", "--filter", f"id={cid}", "--format", "{{.Status}}")
    assert status.startswith("Exited (137)")


def test_stop_with_trap_exits_quickly(dy):
    cid = dy.out("run", "-d", "busybox", "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done").strip()
    time.sleep(0.3)
    t0 = time.monotonic()
    dy.out("stop", cid)
    assert time.monotonic() - t0 < 5
    assert dy.out("inspect", "-f", "{{.State.ExitCode}}", cid).strip() == "0"


def test_kill_signal_and_wait(dy):
    cid = dy.out("run", "-d", "busybox", "sh", "-c", "trap 'exit 42' USR1; while true; do sleep 0.1; done").strip()
    time.sleep(0.3)
    dy.out("kill", "-s", "USR1", cid)
    assert dy.out("wait", cid).strip() == "42"
    not_running = dy.cli("kill", cid)
    assert not_running.returncode == 1 and b"is not running" in not_running.stderr


def test_restart(dy):
    cid = dy.out("run", "-d", "busybox", "sh", "-c", "echo boot; sleep 100").strip()
    dy.out("restart", "-t", "0", cid)
    time.sleep(0.5)
    assert dy.out("logs", cid).split() == ["boot", "boot"]
    assert dy.out("inspect", "-f", "{{.State.Running}}", cid).strip() == "true"


def test_memory_limit_kills_with_137(dy):
    proc = dy.cli("run", "--rm", "-m", "32m", "busybox", "tail", "/dev/zero", timeout=120)
    assert proc.returncode == 137


def test_pids_limit(dy):
    script = "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; echo started; wait"
    limited = dy.cli("run", "--rm", "--pids-limit", "5", "busybox", "sh", "-c", script)
    assert limited.returncode != 0
    assert b"can't fork" in limited.stderr
    assert dy.cli("run", "--rm", "--pids-limit", "20", "busybox", "sh", "-c", script).stdout == b"started\n"


def test_cpus_and_memory_in_inspect(dy):
    cid = dy.out("create", "--cpus", "1.5", "-m", "64m", "--pids-limit", "50", "busybox", "true").strip()
    hc = json.loads(dy.out("inspect", cid))[0]["HostConfig"]
    assert hc["NanoCpus"] == 1_500_000_000
    assert hc["Memory"] == 64 * 1024 * 1024
    assert hc["PidsLimit"] == 50


def test_stdin_interactive(dy):
    proc = dy.cli("run", "-i", "--rm", "busybox", "cat", input=b"hi through stdin\n")
    assert proc.returncode == 0
    assert proc.stdout == b"hi through stdin\n"


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_other_runtimes_run_the_same_bundle(dy, runtime):
    if not Path(f"/usr/sbin/{runtime}").exists() and not Path(f"/usr/bin/{runtime}").exists():
        pytest.skip(f"{runtime} not installed")
    proc = dy.cli("run", "--rm", "--runtime", runtime, "busybox", "sh", "-c", "echo $$; hostname")
    if b"cgroups in hybrid mode not supported" in proc.stderr:
        # crun refuses hosts whose cgroup v2 hierarchy has controllers in hybrid mode (hugetlb here).
        pytest.skip(f"{runtime} does not support this host's hybrid cgroup layout")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == b"1"
    assert dy.cli("run", "--rm", "--runtime", runtime, "busybox", "sh", "-c", "exit 7").returncode == 7


def test_rm_rules_and_cleanup(dy):
    cid = dy.out("run", "-d", "busybox", "sleep", "100").strip()
    refused = dy.cli("rm", cid)
    assert refused.returncode == 1 and b"container is running" in refused.stderr
    pid = json.loads(dy.out("inspect", cid))[0]["State"]["Pid"]
    dy.out("rm", "-f", cid)
    assert not Path(f"/proc/{pid}").exists()
    with open("/proc/self/mountinfo") as f:
        assert cid not in f.read()
    assert not list(Path("/sys/fs/cgroup").glob(f"*/dockyard/{cid}"))
    assert not (dy.data_root / "containers" / cid).exists()
    gone = dy.cli("inspect", cid)
    assert gone.returncode == 1 and b"No such" in gone.stderr


def _wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_restart_policy_on_failure_counts(dy):
    cid = dy.out("run", "-d", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo try; exit 3").strip()
    assert _wait_for(lambda: dy.out("logs", cid).split() == ["try"] * 3)
    assert _wait_for(lambda: dy.out("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", cid).strip() == "exited 2")
    assert dy.out("inspect", "-f", "{{.State.ExitCode}}", cid).strip() == "3"


def test_restart_policy_always_stops_on_manual_stop(dy):
    cid = dy.out("run", "-d", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2").strip()
    assert _wait_for(lambda: int(dy.out("inspect", "-f", "{{.RestartCount}}", cid)) >= 2)
    dy.out("stop", "-t", "1", cid)
    count = dy.out("inspect", "-f", "{{.RestartCount}}", cid)
    time.sleep(1.0)
    assert dy.out("inspect", "-f", "{{.State.Running}} {{.RestartCount}}", cid).split() == ["false", count.strip()]
    conflict = dy.cli("run", "--rm", "--restart", "always", "busybox", "true")
    assert conflict.returncode == 125


def test_restart_always_comes_back_with_the_daemon(dy):
    """A container that exits while the daemon is down is restarted when it comes back (always),
    but not when the user had stopped it (unless-stopped)."""
    keep = dy.out("run", "-d", "--restart", "always", "busybox", "sh", "-c", "sleep 1; exit 1").strip()
    stopped = dy.out("run", "-d", "--restart", "unless-stopped", "busybox", "sleep", "100").strip()
    dy.out("stop", "-t", "0", stopped)
    dy.stop()
    time.sleep(1.5)
    dy.start()
    assert _wait_for(lambda: int(dy.out("inspect", "-f", "{{.RestartCount}}", keep)) >= 1)
    assert dy.out("inspect", "-f", "{{.State.Running}}", stopped).strip() == "false"
    assert "HasBeenManuallyStopped" not in dy.out("inspect", stopped)


def test_init_is_pid1_forwards_signals_and_keeps_the_exit_code(dy):
    out = dy.out("run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$")
    first, second = out.splitlines()
    assert first.startswith("/sbin/docker-init -- sh -c") and second != "1"  # the shell is not pid 1 any more
    assert dy.cli("run", "--rm", "--init", "busybox", "sh", "-c", "exit 3").returncode == 3
    cid = dy.out("run", "-d", "--init", "busybox", "sleep", "60").strip()
    started = time.monotonic()
    dy.out("stop", "-t", "10", cid)  # sleep as pid 1 would ignore SIGTERM; under the init it dies at once
    assert time.monotonic() - started < 5
    assert dy.out("inspect", "-f", "{{.HostConfig.Init}} {{.State.ExitCode}}", cid).split() == ["true", "143"]


def test_pid_ipc_uts_modes_group_add_devices_and_sysctls(dy):
    hosts_ps = int(dy.out("run", "--rm", "--pid", "host", "busybox", "sh", "-c", "ps -o pid= | wc -l"))
    assert hosts_ps > 10  # the host's processes, not only its own
    assert dy.out("run", "--rm", "--uts", "host", "busybox", "hostname").strip() == os.uname().nodename
    donor = dy.out("run", "-d", "--ipc", "shareable", "busybox", "sh", "-c", "echo shared > /dev/shm/x; sleep 60")
    donor = donor.strip()
    deadline = time.monotonic() + 10
    while dy.cli("exec", donor, "test", "-f", "/dev/shm/x").returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    script = "cat /dev/shm/x; echo back > /dev/shm/y; ps -o comm= | grep -c sleep"
    joined = ["--ipc", f"container:{donor}", "--pid", f"container:{donor}"]
    out = dy.out("run", "--rm", *joined, "busybox", "sh", "-c", script)
    assert out.split() == ["shared", "1"]  # its /dev/shm and its processes
    assert dy.out("exec", donor, "cat", "/dev/shm/y").strip() == "back"
    private = dy.out("run", "-d", "busybox", "sleep", "60").strip()
    refused = dy.cli("run", "--rm", "--ipc", f"container:{private}", "busybox", "true")
    assert refused.returncode == 125 and b"non-shareable IPC" in refused.stderr
    out = dy.out("run", "--rm", "--group-add", "wheel", "--group-add", "4242", "busybox", "id", "-G")
    assert {"10", "4242"} <= set(out.split())
    device = ["--device", "/dev/null:/dev/mynull:rw"]
    out = dy.out("run", "--rm", *device, "busybox", "sh", "-c", "echo x > /dev/mynull && echo ok")
    assert out.strip() == "ok"
    sysctl = ["--sysctl", "net.ipv4.ip_forward=1", "--network", "none"]
    assert dy.out("run", "--rm", *sysctl, "busybox", "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"
    dy.out("rm", "-f", donor, private)
    assert not [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if f"{donor}/shm" in line]


def test_log_options_rotate_and_the_none_driver(dy):
    script = "for i in $(seq 1 300); do echo line-$i; done"
    cid = dy.out("run", "-d", "--log-opt", "max-size=2k", "--log-opt", "max-file=2", "busybox", "sh", "-c", script)
    cid = cid.strip()
    dy.out("wait", cid)
    lines = dy.out("logs", cid).split()
    assert lines[-1] == "line-300" and 0 < len(lines) < 300  # the oldest rotated away
    assert json.loads(dy.out("inspect", "-f", "{{json .HostConfig.LogConfig}}", cid)) == {
        "Type": "json-file",
        "Config": {"max-size": "2k", "max-file": "2"},
    }
    quiet = dy.out("run", "-d", "--log-driver", "none", "busybox", "echo", "hi").strip()
    dy.out("wait", quiet)
    out = dy.cli("logs", quiet)
    assert out.returncode != 0 and b"configured logging driver does not support reading" in out.stderr
    bad = dy.cli("run", "--rm", "--log-opt", "bogus=1", "busybox", "true")
    assert bad.returncode == 125 and b"unknown log opt 'bogus' for json-file log driver" in bad.stderr
