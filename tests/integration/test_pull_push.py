"""pull, push, login, logout and search end to end: CLI → Engine API → daemon → registry on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.distribution.client.push import Pusher
from dockyard.distribution.client.registry import Registry
from dockyard.image import manifest as mf
from dockyard.image.reference import parse_docker_ref
from tests.helpers.daemon import DaemonEnv
from tests.unit.test_registry_client import (  # noqa: F401  (docker_registry is a fixture)
    FakeRegistry,
    _gzip,
    _import,
    digest_of,
    docker_registry,
    layer_tar,
    new_store,
)


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private credentials file for the CLI (dy.cli passes the environment on)."""
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "cfg"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-cfg"))
    return tmp_path / "cfg"


@pytest.fixture
def fake_registry() -> Iterator[FakeRegistry]:
    server = FakeRegistry()
    try:
        yield server
    finally:
        server.close()


def test_push_and_pull_via_cli(dy: DaemonEnv, docker_registry: str, tmp_path: Path) -> None:  # noqa: F811
    target = f"{docker_registry}/it/bb:1"
    dy.out("tag", "busybox:latest", target)
    try:
        pushed = dy.cli("push", target)
        out = pushed.stdout.decode()
        assert pushed.returncode == 0, pushed.stderr.decode()
        assert f"The push refers to repository [{docker_registry}/it/bb]" in out
        assert "Pushed" in out and "1: digest: sha256:" in out
        digest = out.split("1: digest: ")[1].split()[0]
        again = dy.out("push", target)
        assert "Layer already exists" in again
        up = dy.out("pull", target)
        assert f"Status: Image is up to date for {target}" in up and up.rstrip().endswith(target)
        assert f"{docker_registry}/it/bb@{digest}" in json.loads(dy.out("image", "inspect", target))[0]["RepoDigests"]
        assert dy.out("run", "--rm", target, "echo", "from-registry").strip() == "from-registry"
    finally:
        dy.cli("rmi", target)

    # an image the daemon has never seen: downloaded, verified, unpacked, runnable layer content checked
    store = new_store(tmp_path / "src")
    fresh = f"{docker_registry}/it/fresh:v1"
    _import(store, fresh, {"greeting.txt": b"hello from the registry\n"})
    Pusher(store, Registry(docker_registry), lambda m: None).push(parse_docker_ref(fresh))
    pulled = dy.cli("pull", fresh)
    text = pulled.stdout.decode()
    assert pulled.returncode == 0, pulled.stderr.decode()
    assert "Pulling from it/fresh" in text and "Pull complete" in text
    assert f"Status: Downloaded newer image for {fresh}" in text
    try:
        inspect = json.loads(dy.out("image", "inspect", fresh))[0]
        assert inspect["Id"] == store.resolve(fresh).id
    finally:
        dy.cli("rmi", fresh)


def test_pull_missing_and_corrupt(dy: DaemonEnv, fake_registry: FakeRegistry, config_dir: Path) -> None:
    ok = layer_tar({"x": b"x"})
    bad = layer_tar({"y": b"y" * 100})
    fake_registry.add_image("bad", [(ok, _gzip(ok), mf.OCI_LAYER_GZIP), (bad, _gzip(bad), mf.OCI_LAYER_GZIP)])
    fake_registry.blobs[digest_of(_gzip(bad))] = _gzip(layer_tar({"evil": b"!"}))
    assert (
        dy.out("login", "-u", "alice", "--password-stdin", fake_registry.host, input=b"s3cret\n").strip()
        == "Login Succeeded"
    )
    result = dy.cli("pull", f"{fake_registry.host}/app:bad")
    assert result.returncode == 1
    assert f"filesystem layer verification failed for digest {digest_of(_gzip(bad))}" in result.stderr.decode()
    assert dy.cli("image", "inspect", f"{fake_registry.host}/app:bad").returncode != 0
    missing = dy.cli("pull", f"{fake_registry.host}/app:nope")
    assert missing.returncode == 1 and "manifest unknown" in missing.stderr.decode()


def test_login_logout_and_credentials(dy: DaemonEnv, fake_registry: FakeRegistry, config_dir: Path) -> None:
    one = layer_tar({"one": b"1"})
    fake_registry.add_image("v1", [(one, _gzip(one), mf.OCI_LAYER_GZIP)])
    ref = f"{fake_registry.host}/app:v1"
    denied = dy.cli("pull", ref)
    assert denied.returncode == 1 and "unauthorized" in denied.stderr.decode()
    bad = dy.cli("login", "-u", "alice", "-p", "wrong", fake_registry.host)
    assert bad.returncode == 1 and "unauthorized: incorrect username or password" in bad.stderr.decode()
    assert not (config_dir / "config.json").exists()
    good = dy.cli("login", "-u", "alice", "--password-stdin", fake_registry.host, input=b"s3cret\n")
    assert good.returncode == 0 and good.stdout.decode().strip() == "Login Succeeded"
    stored = json.loads((config_dir / "config.json").read_text())["auths"][fake_registry.host]
    assert stored["auth"] and (config_dir / "config.json").stat().st_mode & 0o077 == 0
    try:
        assert "Pull complete" in dy.out("pull", ref)
    finally:
        dy.cli("rmi", ref)
    assert dy.out("logout", fake_registry.host).strip() == f"Removing login credentials for {fake_registry.host}"
    assert dy.out("logout", fake_registry.host).strip() == f"Not logged in to {fake_registry.host}"


def test_search(dy: DaemonEnv, fake_registry: FakeRegistry, config_dir: Path) -> None:
    fake_registry.search_results = [
        {"name": "tools/app", "description": "a very long description " * 4, "star_count": 7, "is_official": True},
        {"name": "tools/low", "description": "few stars", "star_count": 1, "is_official": False},
    ]
    dy.out("login", "-u", "alice", "--password-stdin", fake_registry.host, input=b"s3cret\n")
    lines = dy.out("search", f"{fake_registry.host}/tools").splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
    assert lines[1].startswith("tools/app") and "…" in lines[1] and lines[1].rstrip().endswith("[OK]")
    names = dy.out("search", "--filter", "stars=5", "--format", "{{.Name}}", f"{fake_registry.host}/tools")
    assert names.split() == ["tools/app"]
