"""Our client (daemon + CLI) against our registry server: htpasswd over TLS, and Docker's token flow."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.test_registry_clients import Registry, _free_port, _htpasswd, _make_tls

CERTS_D = Path("/etc/dockyard/certs.d")


@pytest.fixture
def creds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "cfg" / "config.json"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-cfg"))
    return _htpasswd(tmp_path / "htpasswd", "alice", "s3cret")


def _round_trip(dy, addr: str, tag: str) -> None:
    target = f"{addr}/team/bb:{tag}"
    dy.out("tag", "busybox", target)
    try:
        refused = dy.cli("push", target)
        assert refused.returncode != 0
        assert b"unauthorized" in (refused.stdout + refused.stderr).lower()
        bad = dy.cli("login", "-u", "alice", "--password-stdin", addr, input=b"wrong\n")
        assert bad.returncode != 0 and b"unauthorized" in bad.stderr.lower()
        good = dy.cli("login", "-u", "alice", "--password-stdin", addr, input=b"s3cret\n")
        assert good.returncode == 0 and b"Login Succeeded" in good.stdout, good.stderr
        assert "digest: sha256:" in dy.out("push", target)
        dy.out("rmi", target)
        assert dy.cli("inspect", "--type", "image", target).returncode == 1
        pulled = dy.out("pull", target)
        assert f"Status: Downloaded newer image for {target}" in pulled
        assert dy.out("run", "--rm", "--network", "none", target, "echo", tag) == f"{tag}\n"
        dy.out("logout", addr)
    finally:
        dy.cli("rmi", "-f", target)


def test_htpasswd_over_tls(dy, creds: Path, tmp_path: Path):
    ca, cert, key = _make_tls(tmp_path / "tls")
    port = _free_port()
    certs = CERTS_D / f"127.0.0.1:{port}"
    certs.mkdir(parents=True)
    shutil.copy(ca, certs / "ca.crt")
    server = Registry(
        tmp_path / "reg", "--htpasswd", str(creds), "--tls-cert", str(cert), "--tls-key", str(key), port=port
    )
    try:
        _round_trip(dy, server.addr, "tls")
    finally:
        server.stop()
        shutil.rmtree(certs, ignore_errors=True)
        if CERTS_D.exists() and not any(CERTS_D.iterdir()):
            CERTS_D.rmdir()
            if not any(CERTS_D.parent.iterdir()):
                CERTS_D.parent.rmdir()


def test_token_flow(dy, creds: Path, tmp_path: Path):
    port = _free_port()
    realm = f"http://127.0.0.1:{port}/auth/token"
    token_args = ["--token-realm", realm, "--token-key", str(tmp_path / "token.pem")]
    server = Registry(tmp_path / "reg", "--htpasswd", str(creds), *token_args, port=port)
    try:
        _round_trip(dy, server.addr, "token")
    finally:
        server.stop()
