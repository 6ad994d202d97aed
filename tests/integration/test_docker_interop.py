"""Optional: images move between dockyard and a real dockerd through `save`/`load` (runs when dockerd exists)."""

from __future__ import annotations

import json
import shutil
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
