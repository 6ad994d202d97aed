"""Compatibility: the real docker CLI (v28) and the docker SDK for Python against a dockyard daemon.

Key sets and value types are checked against the Engine API documentation (v1.47 schemas)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

DOCKER = "/usr/local/bin/docker"

# Engine API v1.47: ContainerInspectResponse, ContainerSummary, ImageSummary, SystemVersion (required keys).
INSPECT_KEYS = {
    "Id": str,
    "Created": str,
    "Path": str,
    "Args": list,
    "State": dict,
    "Image": str,
    "ResolvConfPath": str,
    "HostnamePath": str,
    "HostsPath": str,
    "LogPath": str,
    "Name": str,
    "RestartCount": int,
    "Driver": str,
    "Platform": str,
    "MountLabel": str,
    "ProcessLabel": str,
    "AppArmorProfile": str,
    "HostConfig": dict,
    "GraphDriver": dict,
    "Mounts": list,
    "Config": dict,
    "NetworkSettings": dict,
}
STATE_KEYS = {
    "Status": str,
    "Running": bool,
    "Paused": bool,
    "Restarting": bool,
    "OOMKilled": bool,
    "Dead": bool,
    "Pid": int,
    "ExitCode": int,
    "Error": str,
    "StartedAt": str,
    "FinishedAt": str,
}
PS_KEYS = {
    "Id": str,
    "Names": list,
    "Image": str,
    "ImageID": str,
    "Command": str,
    "Created": int,
    "Ports": list,
    "Labels": dict,
    "State": str,
    "Status": str,
    "HostConfig": dict,
    "NetworkSettings": dict,
    "Mounts": list,
}
IMAGE_KEYS = {
    "Id": str,
    "ParentId": str,
    "RepoTags": list,
    "RepoDigests": list,
    "Created": int,
    "Size": int,
    "SharedSize": int,
    "Labels": dict,
    "Containers": int,
}
VERSION_KEYS = {
    "Platform": dict,
    "Components": list,
    "Version": str,
    "ApiVersion": str,
    "MinAPIVersion": str,
    "GitCommit": str,
    "GoVersion": str,
    "Os": str,
    "Arch": str,
    "KernelVersion": str,
}
PATH_STAT_KEYS = {"name": str, "size": int, "mode": int, "mtime": str, "linkTarget": str}

pytestmark = pytest.mark.skipif(not os.path.exists(DOCKER), reason="the docker CLI is not installed")


def _check_shape(obj: dict, expected: dict[str, type], what: str) -> None:
    missing = expected.keys() - obj.keys()
    assert not missing, f"{what} lacks {sorted(missing)}"
    wrong = {k: type(obj[k]).__name__ for k, t in expected.items() if not isinstance(obj[k], t)}
    assert not wrong, f"{what} has wrong types {wrong}"


class DockerCLI:
    """The real docker CLI pointed at the dockyard daemon, with a private config directory."""

    def __init__(self, host: str, config_dir: Path) -> None:
        self.env = {**os.environ, "DOCKER_HOST": host, "DOCKER_CONFIG": str(config_dir), "DOCKER_CLI_HINTS": "false"}

    def run(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([DOCKER, *args], input=input, capture_output=True, env=self.env, timeout=120)

    def out(self, *args: str, input: bytes | None = None) -> str:
        proc = self.run(*args, input=input)
        assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr.decode()}"
        return proc.stdout.decode()


@pytest.fixture
def docker_cli(dy, tmp_path: Path) -> DockerCLI:
    config = tmp_path / "docker-config"
    config.mkdir()
    try:
        yield DockerCLI(dy.host, config)
    finally:
        shutil.rmtree(config, ignore_errors=True)


@pytest.fixture
def sdk(dy):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=dy.host, version="auto", timeout=60)
    try:
        yield client
    finally:
        client.close()


def _name() -> str:
    return "compat-" + uuid.uuid4().hex[:12]


def _wait_file(container, path: str) -> None:
    import time

    for _ in range(100):
        try:
            container.get_archive(path)
            return
        except Exception:
            time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def test_docker_cli_version_decodes(docker_cli: DockerCLI):
    server = json.loads(docker_cli.out("version", "--format", "{{json .Server}}"))
    assert server["ApiVersion"] and server["Components"][0]["Name"] == "Engine"


def test_docker_cli_core_verbs_and_shapes(docker_cli: DockerCLI):
    name = _name()
    cid = docker_cli.out(
        "run",
        "-d",
        "--name",
        name,
        "--label",
        "compat=1",
        "busybox",
        "sh",
        "-c",
        "echo hello; echo err >&2; while true; do sleep 1; done",
    ).strip()
    assert len(cid) == 64
    ps = json.loads(docker_cli.out("ps", "--filter", f"name={name}", "--format", "{{json .}}"))
    assert ps["Names"] == name and ps["State"] == "running"
    logs = docker_cli.run("logs", name)
    assert b"hello" in logs.stdout and b"err" in logs.stderr
    inspect = json.loads(docker_cli.out("inspect", name))[0]
    _check_shape(inspect, INSPECT_KEYS, "container inspect")
    _check_shape(inspect["State"], STATE_KEYS, "State")
    assert any(line.startswith("busybox") for line in docker_cli.out("images").splitlines())
    top = docker_cli.out("top", name)
    assert "PID" in top.splitlines()[0] and "sleep" in top
    stats = docker_cli.out("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", name).split()
    assert stats[0] == name and stats[-1] != "0"
    docker_cli.out("pause", name)
    assert "(Paused)" in docker_cli.out("ps", "--filter", f"name={name}")
    docker_cli.out("unpause", name)
    assert docker_cli.out("update", "--memory", "32m", "--memory-swap", "64m", name).strip() == name
    assert docker_cli.out("inspect", "-f", "{{.HostConfig.Memory}}", name).strip() == str(32 << 20)
    assert docker_cli.out("port", name) == ""
    docker_cli.out("kill", name)
    assert docker_cli.out("wait", name).strip() == "137"
    docker_cli.out("rm", name)


def test_docker_cli_cp_diff_commit_prune_df(docker_cli: DockerCLI, tmp_path: Path):
    name = _name()
    docker_cli.out("run", "--name", name, "busybox", "sh", "-c", "mkdir /made && echo data > /made/file")
    assert "A /made/file" in docker_cli.out("diff", name).splitlines()
    docker_cli.out("cp", f"{name}:/made", str(tmp_path / "made"))  # a stopped container
    assert (tmp_path / "made" / "file").read_text() == "data\n"
    (tmp_path / "in.txt").write_text("in")
    docker_cli.out("cp", str(tmp_path / "in.txt"), f"{name}:/made/")
    docker_cli.out("cp", f"{name}:/made/.", str(tmp_path / "back"))
    assert sorted(os.listdir(tmp_path / "back")) == ["file", "in.txt"]
    repo = "compat-img-" + uuid.uuid4().hex[:8]
    image_id = docker_cli.out("commit", "-c", "LABEL compat=yes", name, f"{repo}:1").strip()
    assert image_id.startswith("sha256:")
    assert docker_cli.out("run", "--rm", f"{repo}:1", "cat", "/made/in.txt") == "in"
    assert docker_cli.out("inspect", "-f", "{{.Config.Labels.compat}}", f"{repo}:1").strip() == "yes"
    df = docker_cli.out("system", "df").splitlines()
    assert df[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"] and df[1].startswith("Images")
    cid = docker_cli.out("inspect", "-f", "{{.Id}}", name).strip()
    pruned = docker_cli.out("container", "prune", "-f", "--filter", f"until={10**10}")
    assert cid in pruned.splitlines() and "Total reclaimed space" in pruned
    out = docker_cli.out("image", "prune", "-a", "-f", "--filter", "label=compat=yes")
    assert f"untagged: {repo}:1" in out
    assert "Total reclaimed space" in docker_cli.out("system", "prune", "-f")
    rmi = docker_cli.run("rmi", f"{repo}:1")
    assert rmi.returncode == 1 and b"No such image" in rmi.stderr


def test_sdk_over_the_verbs(sdk):
    version = sdk.version()
    _check_shape(version, VERSION_KEYS, "version")
    name = _name()
    c = sdk.containers.run(
        "busybox",
        ["sh", "-c", "echo sdk > /made; while true; do sleep 1; done"],
        name=name,
        detach=True,
        labels={"sdk": "1"},
    )
    try:
        _wait_file(c, "/made")
        items = sdk.api.containers(filters={"name": name})
        assert len(items) == 1
        _check_shape(items[0], PS_KEYS, "containers/json item")
        _check_shape(sdk.api.images()[0], IMAGE_KEYS, "images/json item")
        assert "Titles" in c.top() and c.top()["Processes"]
        stats = c.stats(stream=False)
        assert stats["precpu_stats"]["system_cpu_usage"] > 0 and stats["memory_stats"]["limit"] > 0
        c.pause()
        c.reload()
        assert c.status == "paused"
        c.unpause()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("put.txt")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"put"))
        assert c.put_archive("/tmp", buf.getvalue())
        chunks, stat = c.get_archive("/tmp/put.txt")
        _check_shape(stat, PATH_STAT_KEYS, "path stat")
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            assert tar.extractfile("put.txt").read() == b"put"
        assert {"Path": "/made", "Kind": 1} in c.diff()
        c.update(mem_limit="48m")
        assert sdk.api.inspect_container(name)["HostConfig"]["Memory"] == 48 << 20
        repo = "sdk-" + uuid.uuid4().hex[:8]
        image = c.commit(repository=repo, tag="t", message="via sdk")
        assert image.attrs["Comment"] == "via sdk"
        assert sdk.containers.run(f"{repo}:t", ["cat", "/made"], remove=True) == b"sdk\n"
        df = sdk.df()
        assert {"LayersSize", "Images", "Containers", "Volumes"} <= df.keys()
        sdk.images.remove(f"{repo}:t")
        assert sdk.images.prune()["SpaceReclaimed"] >= 0
        assert c.logs() == b""
    finally:
        c.remove(force=True)
    stopped = sdk.containers.create("busybox", ["true"], labels={"sdk-prune": name})
    report = sdk.containers.prune(filters={"label": f"sdk-prune={name}"})
    assert report["ContainersDeleted"] == [stopped.id]
