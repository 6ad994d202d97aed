"""Volumes end to end: named and anonymous volumes, binds, tmpfs, --volumes-from, --read-only, prune,
bad input, a daemon restart, and the real docker CLI and SDK against the /volumes API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

DOCKER = "/usr/local/bin/docker"


def _uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def vols(dy) -> Iterator[list[str]]:
    """Names of volumes this test makes; they (and anonymous volumes it left unused) go at the end."""
    before = set(dy.out("volume", "ls", "-q").split())
    names: list[str] = []
    yield names
    for cid in dy.out("ps", "-aq", "--no-trunc").split():  # containers first: they hold volumes
        mounts = json.loads(dy.out("inspect", "--format", "{{json .Mounts}}", cid)) or []
        if any(m.get("Name") in names for m in mounts):
            dy.cli("rm", "-f", cid)
    leftover = (set(dy.out("volume", "ls", "-q").split()) - before) | set(names)
    if leftover:
        dy.cli("volume", "rm", "-f", *sorted(leftover))


@pytest.fixture
def host_dir() -> Iterator[Path]:
    path = Path("/tmp") / f"dy-vol-{_uid()}"
    path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _mounts(dy, container: str) -> list[dict]:
    return json.loads(dy.out("inspect", "--format", "{{json .Mounts}}", container))


def test_named_volume_data_outlives_containers_and_in_use_is_409(dy, vols):
    name = f"data-{_uid()}"
    vols.append(name)
    assert dy.out("volume", "create", "--label", "k=v", name).strip() == name
    dy.out("run", "--rm", "-v", f"{name}:/data", "busybox", "sh", "-c", "echo persisted > /data/f")
    assert dy.out("run", "--rm", "-v", f"{name}:/data:ro", "busybox", "cat", "/data/f") == "persisted\n"
    info = json.loads(dy.out("volume", "inspect", name))[0]
    assert info["Labels"] == {"k": "v"} and info["Mountpoint"].endswith(f"/volumes/{name}/_data")
    assert Path(info["Mountpoint"], "f").read_text() == "persisted\n"
    holder = dy.out("create", "-v", f"{name}:/data", "busybox", "true").strip()
    rm = dy.cli("volume", "rm", name)
    assert rm.returncode == 1
    assert f"remove {name}: volume is in use - [{holder}]" in rm.stderr.decode()
    dy.out("rm", holder)
    assert dy.out("volume", "rm", name).strip() == name
    assert name not in dy.out("volume", "ls", "-q").split()


def test_bind_mounts_read_only_and_read_write(dy, host_dir):
    (host_dir / "in").write_text("host file\n")
    script = "cat /m/in; touch /m/new"
    ro = dy.cli("run", "--rm", "-v", f"{host_dir}:/m:ro", "busybox", "sh", "-c", script)
    assert ro.returncode != 0 and ro.stdout == b"host file\n" and b"Read-only file system" in ro.stderr
    ro_mount = dy.cli("run", "--rm", "--mount", f"type=bind,src={host_dir},dst=/m,readonly", "busybox", "touch", "/m/x")
    assert ro_mount.returncode != 0 and not (host_dir / "x").exists()
    dy.out("run", "--rm", "-v", f"{host_dir}:/m", "busybox", "sh", "-c", "echo back > /m/out")
    assert (host_dir / "out").read_text() == "back\n"
    made = host_dir / "made" / "by-v"
    dy.out("run", "--rm", "-v", f"{made}:/m", "busybox", "true")
    assert made.is_dir()  # -v creates a missing host directory, as docker does


def test_new_named_volume_is_filled_with_image_content(dy, vols):
    name = f"etc-{_uid()}"
    vols.append(name)
    out = dy.out("run", "--rm", "-v", f"{name}:/etc", "busybox", "cat", "/etc/passwd")
    assert out.startswith("root:")
    mountpoint = json.loads(dy.out("volume", "inspect", name))[0]["Mountpoint"]
    assert Path(mountpoint, "passwd").read_text() == out
    dy.out("run", "--rm", "-v", f"{name}:/etc", "busybox", "sh", "-c", "echo mine > /etc/passwd")
    assert dy.out("run", "--rm", "-v", f"{name}:/etc", "busybox", "cat", "/etc/passwd") == "mine\n"


def test_image_volume_gets_anonymous_volume_removed_only_with_rm_v(dy, vols):
    builder = f"vb-{_uid()}"
    repo = f"withvol-{_uid()}"
    dy.out("run", "--name", builder, "busybox", "sh", "-c", "mkdir /data && echo seed > /data/seed")
    dy.out("commit", "-c", "VOLUME /data", builder, repo)
    try:
        assert json.loads(dy.out("image", "inspect", "--format", "{{json .Config.Volumes}}", repo)) == {"/data": {}}
        kept = dy.out("run", "-d", repo, "cat", "/data/seed").strip()
        dy.out("wait", kept)
        assert dy.out("logs", kept) == "seed\n"  # the image's content was copied into the volume
        (mount,) = _mounts(dy, kept)
        assert mount["Type"] == "volume" and mount["Destination"] == "/data" and len(mount["Name"]) == 64
        labels = json.loads(dy.out("volume", "inspect", "--format", "{{json .Labels}}", mount["Name"]))
        assert labels == {"com.docker.volume.anonymous": ""}
        dy.out("rm", kept)
        assert mount["Name"] in dy.out("volume", "ls", "-q").split()  # kept without -v
        dy.out("volume", "rm", mount["Name"])
        gone = dy.out("create", repo, "true").strip()
        (mount,) = _mounts(dy, gone)
        dy.out("rm", "-v", gone)
        assert mount["Name"] not in dy.out("volume", "ls", "-q").split()
        dy.out("run", "--rm", repo, "true")  # --rm takes its anonymous volume along too
        named = f"over-{_uid()}"
        vols.append(named)
        over = dy.out("create", "-v", f"{named}:/data", repo, "true").strip()
        assert [m["Name"] for m in _mounts(dy, over)] == [named]  # no anonymous volume under -v
        dy.out("rm", "-v", over)
        assert named in dy.out("volume", "ls", "-q").split()  # named volumes survive rm -v
    finally:
        dy.cli("rm", "-f", builder)
        dy.cli("rmi", "-f", repo)


def test_volumes_from_tmpfs_and_read_only_root(dy, vols, host_dir):
    name = f"vf-{_uid()}"
    vols.append(name)
    source = dy.out("create", "-v", f"{name}:/shared", "-v", f"{host_dir}:/hostdir", "busybox", "true").strip()
    dy.out("run", "--rm", "--volumes-from", source, "busybox", "sh", "-c", "echo via > /shared/f; echo h > /hostdir/h")
    assert (host_dir / "h").read_text() == "h\n"
    ro = dy.cli("run", "--rm", "--volumes-from", f"{source}:ro", "busybox", "touch", "/shared/g")
    assert ro.returncode != 0 and b"Read-only file system" in ro.stderr
    script = "cat /shared/f; echo ok > /w/f; touch /rootfile 2>/dev/null || echo root-ro; df -k /t | tail -1"
    out = dy.out(
        "run", "--rm", "--read-only", "--volumes-from", source, "--mount", "type=volume,dst=/w",
        "--tmpfs", "/t:size=1m", "busybox", "sh", "-c", script,
    )  # fmt: skip
    lines = out.splitlines()
    assert lines[:2] == ["via", "root-ro"]
    assert lines[2].split()[1] == "1024"  # a 1 MiB tmpfs, in KiB
    out = dy.out("run", "--rm", "--mount", "type=tmpfs,dst=/t,tmpfs-size=2m", "busybox", "sh", "-c", "df -k /t")
    assert out.splitlines()[-1].split()[1] == "2048"
    missing = dy.cli("run", "--rm", "--pull", "never", "--volumes-from", f"ghost-{_uid()}", "busybox", "true")
    assert missing.returncode == 125 and b"No such container" in missing.stderr


def test_bad_input_is_a_clear_error_and_creates_nothing(dy, vols):
    before_ps = dy.out("ps", "-aq")
    before_vols = dy.out("volume", "ls", "-q")
    bad = dy.cli("run", "--rm", "--pull", "never", "-v", "a/b:/x", "busybox", "true")
    assert bad.returncode == 125
    assert (
        'create a/b: "a/b" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" '
        "are allowed. If you intended to pass a host directory, use absolute path"
    ) in bad.stderr.decode()
    missing = f"/tmp/dy-missing-{_uid()}"
    mount = f"type=bind,src={missing},dst=/x"
    bad = dy.cli("run", "--rm", "--pull", "never", "-v", "anon1:/y", "--mount", mount, "busybox", "true")
    assert bad.returncode == 125
    assert f'invalid mount config for type "bind": bind source path does not exist: {missing}' in bad.stderr.decode()
    bad = dy.cli("volume", "create", "a/b")
    assert bad.returncode == 1 and b"includes invalid characters" in bad.stderr
    dup = dy.cli("create", "--pull", "never", "-v", "dup1:/x", "-v", "dup2:/x", "busybox")
    assert dup.returncode == 125 and b"Duplicate mount point: /x" in dup.stderr
    assert dy.out("ps", "-aq") == before_ps
    assert dy.out("volume", "ls", "-q") == before_vols
    assert not os.path.exists(missing)


def test_prune_filters_and_ls(dy, vols):
    keep, drop = f"keep-{_uid()}", f"drop-{_uid()}"
    vols += [keep, drop]
    dy.out("volume", "create", "--label", "tier=keep", keep)
    dy.out("volume", "create", drop)
    anon = dy.out("volume", "create", "--label", "com.docker.volume.anonymous=").strip()
    table = dy.out("volume", "ls", "--filter", f"name={keep}")
    assert table.splitlines()[0].split() == ["DRIVER", "VOLUME", "NAME"] and keep in table
    assert dy.out("volume", "ls", "-q", "--filter", "label=tier=keep").split() == [keep]
    assert dy.out("volume", "ls", "--format", "{{.Name}} {{.Driver}}", "-f", f"name={drop}") == f"{drop} local\n"
    out = dy.out("volume", "prune", "-f")  # anonymous ones only by default
    assert anon in out and drop not in out
    out = dy.out("volume", "prune", "-f", "-a", "--filter", "label!=tier=keep")
    assert drop in out and keep not in out and "Total reclaimed space:" in out
    assert keep in dy.out("volume", "ls", "-q").split()


def test_in_use_is_known_after_a_daemon_restart(dy, vols):
    name = f"rs-{_uid()}"
    vols.append(name)
    holder = dy.out("create", "-v", f"{name}:/d", "busybox", "true").strip()
    dy.kill()
    dy.start()
    rm = dy.cli("volume", "rm", name)
    assert rm.returncode == 1 and b"volume is in use" in rm.stderr
    dy.out("rm", holder)
    dy.out("volume", "rm", name)


@pytest.mark.skipif(not os.path.exists(DOCKER), reason="the docker CLI is not installed")
def test_docker_cli_against_volumes_api(dy, vols, tmp_path):
    env = {**os.environ, "DOCKER_HOST": dy.host, "DOCKER_CONFIG": str(tmp_path), "DOCKER_CLI_HINTS": "false"}

    def docker(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([DOCKER, *args], capture_output=True, env=env, timeout=60)

    name = f"dk-{_uid()}"
    vols.append(name)
    assert docker("volume", "create", "--label", "x=y", name).stdout.decode().strip() == name
    info = json.loads(docker("volume", "inspect", name).stdout)[0]
    assert info["Name"] == name and info["Driver"] == "local" and info["Labels"] == {"x": "y"}
    assert name in docker("volume", "ls", "-q").stdout.decode().split()
    run = docker("run", "--rm", "-v", f"{name}:/v", "busybox", "sh", "-c", "echo d > /v/f && cat /v/f")
    assert run.stdout == b"d\n", run.stderr
    bad = docker("volume", "create", "a/b")
    assert b"includes invalid characters for a local volume name" in bad.stderr
    df = docker("system", "df", "--format", "{{json .}}")
    assert df.returncode == 0 and b"Local Volumes" in df.stdout
    assert docker("volume", "rm", name).stdout.decode().strip() == name
    missing = docker("volume", "rm", name)
    assert missing.returncode == 1 and f"get {name}: no such volume".encode() in missing.stderr


def test_sdk_against_volumes_api(dy, vols):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=dy.host, version="auto", timeout=60)
    try:
        name = f"sdk-{_uid()}"
        vols.append(name)
        volume = client.volumes.create(name=name, labels={"a": "b"})
        assert volume.name == name and volume.attrs["Labels"] == {"a": "b"}
        assert name in [v.name for v in client.volumes.list(filters={"label": "a=b"})]
        binds = {name: {"bind": "/v", "mode": "rw"}}
        out = client.containers.run("busybox", ["sh", "-c", "echo s > /v/f; cat /v/f"], volumes=binds, remove=True)
        assert out == b"s\n"
        with pytest.raises(docker.errors.NotFound):
            client.volumes.get(f"nope-{_uid()}")
        client.volumes.get(name).remove()
        assert client.volumes.prune()["VolumesDeleted"] is None or name not in client.volumes.prune()["VolumesDeleted"]
    finally:
        client.close()


def test_plain_inspect_finds_volumes_and_networks(dy):
    dy.out("volume", "create", "inspect-me")
    dy.out("network", "create", "inspect-net")
    try:
        assert dy.out("inspect", "-f", "{{.Name}} {{.Driver}}", "inspect-me").strip() == "inspect-me local"
        assert dy.out("inspect", "-f", "{{.Name}} {{.Driver}}", "inspect-net").strip() == "inspect-net bridge"
        assert dy.cli("inspect", "--type", "volume", "inspect-net").returncode == 1
    finally:
        dy.cli("volume", "rm", "inspect-me")
        dy.cli("network", "rm", "inspect-net")
