"""Our client (daemon + CLI) against our registry server: htpasswd over TLS, and Docker's token flow."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_registry_clients import _free_port, _htpasswd, _make_tls

CERTS_D = Path("/etc/dockyard/certs.d")


class Server:
    def __init__(self, root: Path, port: int, *args: str) -> None:
        self.addr = f"127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dockyard", "registry", "serve", "--addr", self.addr, "--root", str(root), *args],
            stderr=subprocess.PIPE,
        )
        line = self.proc.stderr.readline()  # type: ignore[union-attr]
        assert b"listening" in line, line

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


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
    server = Server(tmp_path / "reg", port, "--htpasswd", str(creds), "--tls-cert", str(cert), "--tls-key", str(key))
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
    server = Server(
        tmp_path / "reg",
        port,
        "--htpasswd",
        str(creds),
        "--token-realm",
        realm,
        "--token-key",
        str(tmp_path / "token.pem"),
    )
    try:
        _round_trip(dy, server.addr, "token")
    finally:
        server.stop()
