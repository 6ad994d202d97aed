"""Real registry clients against `dockyard registry serve`: skopeo both ways (plain, htpasswd + TLS with a
CA made here), and docker login/push/pull through a private dockerd when one is installed."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.dockerd import PrivateDockerd, dockerd_available
from tests.helpers.rootfs import busybox_rootfs_tar

skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed (scripts/setup.sh)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """`dockyard registry serve` as its own process on 127.0.0.1:<free port>."""

    def __init__(self, root: Path, *args: str, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.root = root
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
def serve(tmp_path: Path) -> Iterator:
    started: list[Registry] = []

    def start(*args: str) -> Registry:
        started.append(Registry(tmp_path / "registry", *args))
        return started[-1]

    yield start
    for reg in started:
        reg.stop()


def _blob(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


@pytest.fixture(scope="module")
def busybox_layout(tmp_path_factory) -> Path:
    """An OCI image layout holding busybox (one uncompressed layer) as busybox:1."""
    work = tmp_path_factory.mktemp("layout")
    tar = busybox_rootfs_tar(work / "busybox.tar", work / "build").read_bytes()
    layout = work / "oci"
    layer = _blob(layout, tar)
    config = _blob(
        layout,
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["sh"]},
                "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
            }
        ).encode(),
    )
    manifest = _blob(
        layout,
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
            }
        ).encode(),
    )
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        **manifest,
                        "annotations": {"org.opencontainers.image.ref.name": "1"},
                    }
                ],
            }
        )
    )
    return layout


def _skopeo(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def _image(layout: Path, ref: str) -> tuple[list[str], list[str]]:
    """(layer digests, config diff_ids) of `ref` in an OCI layout; skopeo gzips layers on the way up."""
    index = json.loads((layout / "index.json").read_text())
    entry = next(
        m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref
    )
    manifest = json.loads((layout / "blobs" / "sha256" / entry["digest"][7:]).read_text())
    config = json.loads((layout / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_text())
    return [layer["digest"] for layer in manifest["layers"]], config["rootfs"]["diff_ids"]


@skopeo
def test_skopeo_copy_both_ways(serve, busybox_layout: Path, tmp_path: Path):
    reg = serve()
    _skopeo("copy", "--dest-tls-verify=false", f"oci:{busybox_layout}:1", f"docker://{reg.addr}/dy/busybox:1")
    tags = json.loads(_skopeo("list-tags", "--tls-verify=false", f"docker://{reg.addr}/dy/busybox").stdout)
    assert tags["Tags"] == ["1"]
    back = tmp_path / "back"
    _skopeo("copy", "--src-tls-verify=false", f"docker://{reg.addr}/dy/busybox:1", f"oci:{back}:copy")
    layers, diff_ids = _image(back, "copy")
    assert diff_ids == _image(busybox_layout, "1")[1]
    inspect = json.loads(_skopeo("inspect", "--tls-verify=false", f"docker://{reg.addr}/dy/busybox:1").stdout)
    assert inspect["Layers"] == layers
    # Copy between repositories of the same registry: skopeo mounts the blobs across.
    _skopeo(
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{reg.addr}/dy/busybox:1",
        f"docker://{reg.addr}/dy/mirror:latest",
    )
    assert (reg.root / "repositories" / "dy" / "mirror" / "_manifests").is_dir()


def _make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it; returns (ca.crt, server.crt, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "ca.crt", directory / "server.crt", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def _htpasswd(path: Path, user: str, password: str) -> Path:
    subprocess.run(
        [sys.executable, "-m", "dockyard", "registry", "htpasswd", "--password-stdin", str(path), user],
        input=f"{password}\n".encode(),
        check=True,
    )
    return path


@skopeo
def test_skopeo_with_htpasswd_over_tls(serve, busybox_layout: Path, tmp_path: Path):
    ca, cert, key = _make_tls(tmp_path / "tls")
    certs = tmp_path / "certs.d"
    certs.mkdir()
    shutil.copy(ca, certs / "ca.crt")
    users = _htpasswd(tmp_path / "htpasswd", "alice", "s3cret")
    reg = serve("--htpasswd", str(users), "--tls-cert", str(cert), "--tls-key", str(key))
    dest = f"docker://{reg.addr}/private/busybox:tls"
    denied = subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--dest-cert-dir",
            str(certs),
            "--dest-creds",
            "alice:wrong",
            f"oci:{busybox_layout}:1",
            dest,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert denied.returncode != 0 and ("unauthorized" in denied.stderr.lower() or "401" in denied.stderr)
    untrusted = subprocess.run(
        ["skopeo", "--insecure-policy", "inspect", "--creds", "alice:s3cret", dest],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert untrusted.returncode != 0 and "certificate" in untrusted.stderr
    _skopeo("copy", "--dest-cert-dir", str(certs), "--dest-creds", "alice:s3cret", f"oci:{busybox_layout}:1", dest)
    back = tmp_path / "back"
    _skopeo("copy", "--src-cert-dir", str(certs), "--src-creds", "alice:s3cret", dest, f"oci:{back}:tls")
    assert _image(back, "tls")[1] == _image(busybox_layout, "1")[1]


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory) -> Iterator[PrivateDockerd]:
    if not dockerd_available() or os.geteuid() != 0:
        pytest.skip("dockerd (Debian's docker.io) not installed, or not root")
    d = PrivateDockerd(tmp_path_factory.mktemp("dockerd"))
    try:
        d.start()
    except RuntimeError as exc:
        pytest.skip(f"dockerd cannot run here: {exc}")
    yield d
    d.stop()
    shutil.rmtree(d.base, ignore_errors=True)


def test_docker_login_push_pull(serve, dockerd: PrivateDockerd, tmp_path: Path, tmp_path_factory):
    users = _htpasswd(tmp_path / "htpasswd", "bob", "pushpull")
    reg = serve("--htpasswd", str(users))
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    tar = busybox_rootfs_tar(tmp_path / "busybox.tar", tmp_path / "build")
    image = f"{reg.addr}/team/busybox:pushed"
    dockerd.run("import", "--change", 'CMD ["sh"]', str(tar), image, check=True)
    try:
        denied = dockerd.run("push", image, env=env)
        assert denied.returncode != 0 and b"no basic auth credentials" in denied.stderr + denied.stdout
        bad = dockerd.run("login", reg.addr, "-u", "bob", "--password-stdin", input=b"wrong\n", env=env)
        assert bad.returncode != 0
        login = dockerd.run("login", reg.addr, "-u", "bob", "--password-stdin", input=b"pushpull\n", env=env)
        assert login.returncode == 0 and b"Login Succeeded" in login.stdout, login.stderr
        pushed = dockerd.run("push", image, env=env)
        assert pushed.returncode == 0, pushed.stderr
        digest = json.loads(dockerd.run("image", "inspect", image, check=True).stdout)[0]["RepoDigests"]
        dockerd.run("rmi", image, check=True)
        pulled = dockerd.run("pull", image, env=env)
        assert pulled.returncode == 0, pulled.stderr
        assert json.loads(dockerd.run("image", "inspect", image, check=True).stdout)[0]["RepoDigests"] == digest
    finally:
        dockerd.run("rmi", "-f", image)
