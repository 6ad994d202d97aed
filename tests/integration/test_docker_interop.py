"""Optional: images move between dockyard and a real dockerd through `save`/`load` (runs when dockerd exists)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.dockerd import PrivateDockerd, dockerd_available

pytestmark = pytest.mark.skipif(not dockerd_available(), reason="dockerd (Debian's docker.io) not installed")


@pytest.fixture(scope="module")
def dockerd(dockyard_env):
    d = PrivateDockerd(dockyard_env.base / "dockerd")
    try:
        d.start()
    except RuntimeError as exc:
        pytest.skip(f"dockerd cannot run here: {exc}")
    yield d
    d.stop()
    shutil.rmtree(d.base, ignore_errors=True)


def test_dockyard_save_loads_into_docker(dy, dockerd, tmp_path: Path):
    dy.out("tag", "busybox", "interop/out:1")
    archive = tmp_path / "out.tar"
    dy.out("save", "-o", str(archive), "interop/out:1")
    loaded = dockerd.run("load", "-i", str(archive), check=True).stdout.decode()
    assert "interop/out:1" in loaded
    ours = json.loads(dy.out("inspect", "--type", "image", "interop/out:1"))[0]
    theirs = json.loads(dockerd.run("image", "inspect", "interop/out:1", check=True).stdout)[0]
    assert theirs["RootFS"]["Layers"] == ours["RootFS"]["Layers"]
    assert theirs["Config"]["Cmd"] == ["sh"]
    run = dockerd.run("run", "--rm", "--network", "none", "interop/out:1", "echo", "ran in docker")
    if run.returncode == 0:
        assert run.stdout == b"ran in docker\n"
    dy.out("rmi", "interop/out:1")


def test_docker_save_loads_into_dockyard(dy, dockerd, tmp_path: Path):
    tar = dy.base / "busybox.tar"
    dockerd.run("import", "--change", 'CMD ["sh"]', str(tar), "interop/in:2", check=True)
    archive = tmp_path / "in.tar"
    dockerd.run("save", "-o", str(archive), "interop/in:2", check=True)
    assert "Loaded image: interop/in:2" in dy.out("load", "-i", str(archive))
    theirs = json.loads(dockerd.run("image", "inspect", "interop/in:2", check=True).stdout)[0]
    ours = json.loads(dy.out("inspect", "--type", "image", "interop/in:2"))[0]
    assert ours["Id"] == theirs["Id"]
    assert dy.out("run", "--rm", "interop/in:2", "echo", "ran in dockyard") == "ran in dockyard\n"
    dy.out("rmi", "interop/in:2")


def _shape_diff(ours, theirs, path: str = "") -> list[str]:
    """Keys docker has that we lack, keys we add, and type mismatches (nulls are not typed)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        diffs = [f"missing {path}/{k}" for k in theirs if k not in ours]
        diffs += [f"extra {path}/{k}" for k in ours if k not in theirs]
        for key in theirs.keys() & ours.keys():
            diffs += _shape_diff(ours[key], theirs[key], f"{path}/{key}")
        return diffs
    if ours is not None and theirs is not None and type(ours) is not type(theirs):
        return [f"type {path}: {type(ours).__name__} vs {type(theirs).__name__}"]
    return []


def test_json_shapes_match_dockerd(dy, dockerd, tmp_path: Path):
    """inspect, image inspect, version and ps: the same keys and types as a live dockerd, compared at
    the API version that dockerd speaks (fields come and go with versions)."""
    version = dockerd.run("version", "--format", "{{.Server.APIVersion}}", check=True).stdout.decode().strip()
    env = {**os.environ, "DOCKER_API_VERSION": version}
    tar = dy.base / "busybox.tar"
    dockerd.run("import", "--change", 'CMD ["sh"]', str(tar), "shape/bb:1", check=True)
    dy.out("tag", "busybox", "shape/bb:1")
    clis = {"ours": ["docker", "-H", dy.host], "docker": dockerd.cli}
    shapes: dict[str, dict] = {}
    for name, cli in clis.items():

        def get(*args: str, cli=cli) -> object:
            return json.loads(subprocess.run([*cli, *args], check=True, capture_output=True, env=env).stdout)

        cid = subprocess.run(
            [*cli, "run", "-d", "--network", "none", "--name", f"shape-{name}", "shape/bb:1", "sleep", "60"],
            check=True,
            capture_output=True,
            env=env,
            text=True,
        ).stdout.strip()
        try:
            shapes[name] = {
                "container inspect": get("inspect", cid)[0],
                "image inspect": get("image", "inspect", "shape/bb:1")[0],
                "version": get("version", "--format", "{{json .}}"),
                "ps": get("ps", "--filter", f"id={cid}", "--format", "{{json .}}"),
            }
        finally:
            subprocess.run([*cli, "rm", "-f", cid], capture_output=True, env=env)
    dy.out("rmi", "shape/bb:1")
    for what in shapes["docker"]:
        assert _shape_diff(shapes["ours"][what], shapes["docker"][what], what) == []
