"""Argument parsing: docker's flag syntax, flags -> create body, exit codes, and main() end to end."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator

import pytest
from test_client import FakeDaemon, respond, send_chunk

from dockyard.cli.flags import FlagSet, HelpRequested, StatusError, UsageError
from dockyard.cli.main import main
from dockyard.cli.run import build_create_body, exit_code_for_start_error, familiar_tagged, run_flagset
from dockyard.client.streams import encode_frame


def body_for(argv: list[str], **kwargs) -> dict:
    opts, args = run_flagset().parse(argv)
    return build_create_body(opts, args[0], args[1:], detach=opts.detach, **kwargs)


def test_flag_syntax_like_pflag() -> None:
    fs = (
        FlagSet("x", "", interspersed=True)
        .add("-i, --interactive")
        .add("-t, --tty")
        .add("-e, --env", "list")
        .add("--rm")
        .add("-n, --num", "int")
    )
    opts, args = fs.parse(["-it", "-eA=1", "-e", "B=2", "--env=C=3", "pos", "--rm=false", "-n=4", "--", "-x"])
    assert opts.interactive and opts.tty and not opts.rm
    assert opts.env == ["A=1", "B=2", "C=3"] and opts.num == 4
    assert args == ["pos", "-x"]
    assert "rm" in opts.changed


def test_run_stops_at_the_image() -> None:
    opts, args = run_flagset().parse(["--rm", "busybox", "sh", "-c", "echo -e hi"])
    assert opts.rm and args == ["busybox", "sh", "-c", "echo -e hi"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bogus", "busybox"], "unknown flag: --bogus"),
        (["-z", "busybox"], "unknown shorthand flag: 'z' in -z"),
        (["--name"], "flag needs an argument: --name"),
        (["--rm=maybe", "busybox"], 'invalid argument "maybe" for "--rm" flag'),
    ],
)
def test_usage_errors_exit_125(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        run_flagset().parse(argv)
    assert info.value.status == 125
    assert info.value.message.startswith(message)
    assert "Usage:  dockyard run [OPTIONS] IMAGE [COMMAND] [ARG...]" in info.value.message


def test_help_and_argument_count() -> None:
    with pytest.raises(HelpRequested) as info:
        run_flagset().parse(["--help"])
    assert "-h, --hostname" in info.value.text
    with pytest.raises(StatusError, match="requires at least 1 argument"):
        run_flagset().parse([])


def test_create_body_from_flags(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FROM_HOST", "yes")
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFILE_VAR=1\n\nFROM_HOST\n")
    body = body_for(
        [
            "-e",
            "A=1",
            "-e",
            "FROM_HOST",
            "-e",
            "UNSET_VAR_XYZ",
            "--env-file",
            str(env_file),
            "-w",
            "/tmp",
            "-u",
            "1000:1000",
            "--entrypoint",
            "/bin/sh",
            "--hostname",
            "box",
            "-m",
            "32m",
            "--cpus",
            "1.5",
            "--pids-limit",
            "64",
            "--read-only",
            "-l",
            "a=b",
            "--label",
            "flag",
            "--stop-signal",
            "SIGUSR1",
            "--stop-timeout",
            "7",
            "--privileged",
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "ALL",
            "--ulimit",
            "nofile=1024:2048",
            "--ulimit",
            "nproc=10",
            "--shm-size",
            "1g",
            "--runtime",
            "runc",
            "--init",
            "--rm",
            "-p",
            "127.0.0.1:8080:80",
            "-v",
            "/a:/b:ro",
            "busybox",
            "-c",
            "echo hi",
        ]
    )
    host = body["HostConfig"]
    assert body["Image"] == "busybox" and body["Cmd"] == ["-c", "echo hi"]
    assert body["Entrypoint"] == ["/bin/sh"]
    assert body["Env"] == ["FILE_VAR=1", "FROM_HOST=yes", "A=1", "FROM_HOST=yes"]
    assert (body["WorkingDir"], body["User"], body["Hostname"]) == ("/tmp", "1000:1000", "box")
    assert body["Labels"] == {"a": "b", "flag": ""}
    assert (body["StopSignal"], body["StopTimeout"]) == ("SIGUSR1", 7)
    assert host["Memory"] == 32 * 1024 * 1024
    assert host["NanoCpus"] == 1_500_000_000
    assert host["PidsLimit"] == 64 and host["ReadonlyRootfs"] and host["Privileged"] and host["AutoRemove"]
    assert host["CapAdd"] == ["NET_ADMIN"] and host["CapDrop"] == ["ALL"]
    assert host["Ulimits"] == [
        {"Name": "nofile", "Soft": 1024, "Hard": 2048},
        {"Name": "nproc", "Soft": 10, "Hard": 10},
    ]
    assert host["ShmSize"] == 1 << 30 and host["Runtime"] == "runc" and host["Init"] is True
    assert host["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}
    assert body["ExposedPorts"] == {"80/tcp": {}}
    assert host["Binds"] == ["/a:/b:ro"]
    assert body["AttachStdout"] and body["AttachStderr"] and not body["AttachStdin"]


def test_attach_and_detach_streams() -> None:
    body = body_for(["-it", "busybox"], tty_size=(24, 80))
    assert body["AttachStdin"] and body["OpenStdin"] and body["StdinOnce"] and body["Tty"]
    assert body["HostConfig"]["ConsoleSize"] == [24, 80]
    assert body["Cmd"] is None and body["Entrypoint"] is None
    detached = body_for(["-d", "-i", "busybox"])
    assert not (detached["AttachStdin"] or detached["AttachStdout"] or detached["StdinOnce"])
    only_err = body_for(["-a", "stderr", "busybox"])
    assert only_err["AttachStderr"] and not only_err["AttachStdout"]
    assert body_for(["--entrypoint=", "busybox"])["Entrypoint"] == [""]
    assert "PidsLimit" not in body_for(["busybox"])["HostConfig"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--cpus", "x", "b"],
        ["--ulimit", "nofile", "b"],
        ["-m", "lots", "b"],
        ["--ulimit", "nofile=5:1", "b"],
        ["-a", "stdfoo", "b"],
    ],
)
def test_invalid_values_exit_125(argv: list[str]) -> None:
    with pytest.raises(StatusError) as info:
        body_for(argv)
    assert info.value.status == 125 and info.value.message.startswith("dockyard: ")


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ('Error response from daemon: exec: "nope": executable file not found in $PATH', 127),
        ("Error response from daemon: open /x: no such file or directory", 127),
        ("Error response from daemon: exec /etc: permission denied", 126),
        ("Error response from daemon: /bin/x is not executable", 126),
        ("Error response from daemon: cgroup setup failed", 125),
    ],
)
def test_start_error_exit_codes(message: str, code: int) -> None:
    assert exit_code_for_start_error(message) == code


def test_familiar_tagged() -> None:
    assert familiar_tagged("busybox") == "busybox:latest"
    assert familiar_tagged("localhost:5000/app") == "localhost:5000/app:latest"
    assert familiar_tagged("alpine:3.19") == "alpine:3.19"


# ----------------------------------------------------------------------------------- main() end to end
class Recorder:
    """Routes the fake daemon's requests for the run-flow tests."""

    def __init__(self, image_present: bool = True, start_error: str | None = None) -> None:
        self.image_present = image_present
        self.start_error = start_error

    def __call__(self, req: dict, sock: socket.socket) -> None:
        path = req["path"].removeprefix("/v1.47")
        if path == "/containers/create":
            if not self.image_present:
                respond(sock, 404, b'{"message":"No such image: busybox:latest"}')
            else:
                respond(sock, 201, b'{"Id":"c0ffee","Warnings":[]}')
        elif path == "/images/create":
            respond(sock, 500, b'{"message":"pull access denied for busybox: registries are not available"}')
        elif path.endswith("/attach"):
            sock.sendall(
                b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n"
                b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
            )
            sock.sendall(encode_frame(1, b"hello\n") + encode_frame(2, b"warn\n"))
            sock.close()
        elif path.endswith("/wait"):
            respond(sock, 200, chunked=True)
            send_chunk(sock, b'{"StatusCode":7,"Error":null}\n')
            send_chunk(sock, b"")
        elif path.endswith("/start"):
            if self.start_error:
                respond(sock, 400, json.dumps({"message": self.start_error}).encode())
            else:
                respond(sock, 204)
        else:
            respond(sock, 404, b'{"message":"page not found"}')


@pytest.fixture
def fake_daemon() -> Iterator:
    started: list[FakeDaemon] = []

    def start(handler) -> FakeDaemon:
        started.append(FakeDaemon(handler))
        return started[-1]

    try:
        yield start
    finally:
        for fake in started:
            fake.close()


class _Out(io.StringIO):
    """A text stream with a binary buffer, like sys.stdout."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = io.BytesIO()


def run_cli(fake: FakeDaemon, argv: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    out, err = _Out(), _Out()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    code = main(["-H", f"unix://{fake.path}", *argv])
    return code, out.getvalue() + out.buffer.getvalue().decode(), err.getvalue() + err.buffer.getvalue().decode()


def test_run_attached_flow_and_exit_status(fake_daemon, capsys, monkeypatch) -> None:
    fake = fake_daemon(Recorder())
    code, out, err = run_cli(fake, ["run", "--rm", "busybox", "echo", "hello"], capsys, monkeypatch)
    assert code == 7
    assert out == "hello\n" and err == "warn\n"
    paths = [r["path"].removeprefix("/v1.47") for r in fake.requests]
    assert paths[0] == "/containers/create"
    # attach and wait are both opened before start
    assert paths.index("/containers/c0ffee/attach") < paths.index("/containers/c0ffee/start")
    assert paths.index("/containers/c0ffee/wait") < paths.index("/containers/c0ffee/start")
    wait = next(r for r in fake.requests if r["path"].endswith("/wait"))
    assert wait["query"] == "condition=removed"


def test_run_missing_image_tries_pull_and_exits_125(fake_daemon, capsys, monkeypatch) -> None:
    fake = fake_daemon(Recorder(image_present=False))
    code, _, err = run_cli(fake, ["run", "busybox"], capsys, monkeypatch)
    assert code == 125
    assert err.startswith("Unable to find image 'busybox:latest' locally\n")
    assert "dockyard: Error response from daemon: pull access denied for busybox" in err
    assert err.rstrip().endswith("See 'dockyard run --help'.")
    pull = next(r for r in fake.requests if r["path"].endswith("/images/create"))
    assert "fromImage=busybox" in pull["query"] and "tag=latest" in pull["query"]


def test_run_start_error_maps_exit_code(fake_daemon, capsys, monkeypatch) -> None:
    fake = fake_daemon(Recorder(start_error='exec: "nope": executable file not found in $PATH'))
    code, _, err = run_cli(fake, ["run", "-d", "busybox", "nope"], capsys, monkeypatch)
    assert code == 127
    assert 'dockyard: Error response from daemon: exec: "nope": executable file not found in $PATH.' in err


def test_detached_run_prints_id(fake_daemon, capsys, monkeypatch) -> None:
    fake = fake_daemon(Recorder())
    code, out, _ = run_cli(fake, ["run", "-d", "busybox"], capsys, monkeypatch)
    assert (code, out) == (0, "c0ffee\n")
    assert not any(r["path"].endswith("/attach") for r in fake.requests)


def test_multi_container_errors_continue(fake_daemon, capsys, monkeypatch) -> None:
    def handler(req: dict, sock: socket.socket) -> None:
        if "/containers/bad" in req["path"]:
            respond(sock, 404, b'{"message":"No such container: bad"}')
        else:
            respond(sock, 204)

    fake = fake_daemon(handler)
    code, out, err = run_cli(fake, ["rm", "bad", "good"], capsys, monkeypatch)
    assert code == 1
    assert out == "good\n"
    assert err == "Error response from daemon: No such container: bad\n"


def test_ps_sends_filters_and_prints_table(fake_daemon, capsys, monkeypatch) -> None:
    def handler(req: dict, sock: socket.socket) -> None:
        respond(
            sock,
            200,
            json.dumps(
                [
                    {
                        "Id": "a" * 64,
                        "Names": ["/web"],
                        "Image": "busybox",
                        "Command": "sh",
                        "Created": 0,
                        "Status": "Created",
                    }
                ]
            ).encode(),
        )

    fake = fake_daemon(handler)
    code, out, _ = run_cli(
        fake, ["ps", "-a", "--filter", "status=created", "--format", "{{.Names}}"], capsys, monkeypatch
    )
    assert (code, out) == (0, "web\n")
    from urllib.parse import parse_qs

    query = parse_qs(fake.requests[0]["query"])
    assert json.loads(query["filters"][0]) == {"status": {"created": True}}


def test_daemon_absent_message(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DOCKYARD_NO_AUTOSTART", "1")
    monkeypatch.setenv("DOCKYARD_HOST", f"unix://{tmp_path}/none.sock")
    assert main(["ps"]) == 1
    assert capsys.readouterr().err == (
        f"Cannot connect to the dockyard daemon at unix://{tmp_path}/none.sock. Is the dockyard daemon running?\n"
    )


def test_namespace_device_group_and_sysctl_flags() -> None:
    from dockyard.cli.run import parse_device

    flags = ["--pid", "host", "--ipc", "shareable", "--uts", "host", "--group-add", "wheel"]
    flags += ["--sysctl", "net.core.somaxconn=1024", "--device", "/dev/fuse"]
    host = body_for([*flags, "busybox"])["HostConfig"]
    modes = (host["PidMode"], host["IpcMode"], host["UTSMode"], host["GroupAdd"])
    assert modes == ("host", "shareable", "host", ["wheel"])
    assert host["Sysctls"] == {"net.core.somaxconn": "1024"}
    fuse = {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}
    assert host["Devices"] == [fuse]
    sda = {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda", "CgroupPermissions": "r"}
    assert parse_device("/dev/sda:r") == sda
    assert parse_device("/dev/a:/dev/b:rw")["PathInContainer"] == "/dev/b"
    for bad in ("/dev/a:/dev/b:rwx", "/dev/a:b", ":/dev/b"):
        with pytest.raises(ValueError):
            parse_device(bad)
