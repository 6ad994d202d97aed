"""The registry client: auth challenges and tokens, credentials, push and pull against Debian's
docker-registry (real) and an in-test registry (Bearer/Basic auth, corrupt blobs, zstd, indexes)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dockyard.distribution.client import credentials as creds
from dockyard.distribution.client.auth import AuthenticationFailed, Authenticator, parse_challenges
from dockyard.distribution.client.credentials import AuthConfig
from dockyard.distribution.client.metadata import DistributionMetadata
from dockyard.distribution.client.progress import progress_bar
from dockyard.distribution.client.pull import Puller
from dockyard.distribution.client.push import Pusher
from dockyard.distribution.client.registry import Registry, RegistryOptions
from dockyard.errors import DigestMismatch, NotFound, Unauthorized
from dockyard.image import manifest as mf
from dockyard.image.reference import parse_docker_ref
from dockyard.image.store import ImageStore


# -- helpers -----------------------------------------------------------------------------------------
def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


def new_store(root: Path) -> ImageStore:
    from dockyard.storage import open_snapshotter

    return ImageStore(root, open_snapshotter(str(root / "storage"), "vfs"))


def collect() -> tuple[list[dict[str, Any]], Any]:
    messages: list[dict[str, Any]] = []
    return messages, messages.append


def statuses(messages: list[dict[str, Any]]) -> list[str]:
    return [str(m.get("status")) for m in messages if "status" in m]


# -- auth, credentials, options ----------------------------------------------------------------------
def test_parse_challenges_bearer_and_basic() -> None:
    [bearer] = parse_challenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:samalba/my-app:pull,push"'
    )
    assert bearer.scheme == "bearer"
    assert bearer.realm == "https://auth.docker.io/token"
    assert bearer.params["scope"] == "repository:samalba/my-app:pull,push"
    [basic] = parse_challenges('Basic realm="basic-realm"')
    assert basic.scheme == "basic" and basic.realm == "basic-realm"


def test_token_cached_until_expiry() -> None:
    now = [1000.0]
    calls: list[tuple[str, dict[str, str]]] = []

    def fetch(method: str, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        calls.append((url, headers))
        return 200, json.dumps({"token": f"t{len(calls)}", "expires_in": 120}).encode()

    auth = Authenticator(AuthConfig("u", "p"), fetch, clock=lambda: now[0])
    challenge = 'Bearer realm="http://127.0.0.1:1/token",service="reg"'
    assert auth.answer(challenge, "repository:a:pull") == "Bearer t1"
    assert auth.header_for("repository:a:pull") == "Bearer t1"  # pre-authorised, no new fetch
    assert len(calls) == 1
    url, headers = calls[0]
    assert "service=reg" in url and "scope=repository%3Aa%3Apull" in url and "account=u" in url
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert auth.header_for("repository:b:pull") is None  # another scope needs its own token
    now[0] += 200
    assert auth.header_for("repository:a:pull") is None  # expired
    assert auth.answer(challenge, "repository:a:pull") == "Bearer t2"


def test_token_refused_says_unauthorized() -> None:
    auth = Authenticator(AuthConfig("u", "bad"), lambda m, u, h: (401, b"{}"))
    with pytest.raises(AuthenticationFailed, match="unauthorized: incorrect username or password"):
        auth.answer('Bearer realm="http://127.0.0.1:1/token"', "repository:a:pull")


def test_credentials_roundtrip_and_docker_fallback(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp / "dy"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp / "docker"))
    assert creds.load_auth("127.0.0.1:5000") is None
    (tmp / "docker").mkdir()
    (tmp / "docker" / "config.json").write_text(
        json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()}}})
    )
    hub = creds.load_auth("docker.io")
    assert hub is not None and (hub.username, hub.password) == ("hub", "pw")
    path = creds.save_auth("http://127.0.0.1:5000/", AuthConfig("me", "secret:with:colons"))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    saved = json.loads(path.read_text())["auths"]["127.0.0.1:5000"]["auth"]
    assert base64.b64decode(saved) == b"me:secret:with:colons"
    found = creds.load_auth("127.0.0.1:5000")
    assert found is not None and found.password == "secret:with:colons"
    assert creds.remove_auth("127.0.0.1:5000") is True
    assert creds.load_auth("127.0.0.1:5000") is None
    assert creds.remove_auth("127.0.0.1:5000") is False


def test_insecure_rules() -> None:
    options = RegistryOptions(insecure=("myreg.example:5000", "10.1.0.0/16"))
    assert options.is_insecure("127.0.0.1:5000") and options.is_insecure("127.8.9.1")
    assert options.is_insecure("localhost:5000") and options.is_insecure("[::1]:5000")
    assert options.is_insecure("myreg.example:5000") and options.is_insecure("10.1.2.3:443")
    assert not options.is_insecure("registry-1.docker.io") and not options.is_insecure("10.2.0.1:5000")


def test_progress_bar_like_docker() -> None:
    assert progress_bar(0, 1000) == "[>" + " " * 50 + "]       0B/1kB"
    assert progress_bar(1000, 1000).startswith("[" + "=" * 50 + ">]")


# -- a real registry: Debian's docker-registry -------------------------------------------------------
@pytest.fixture(scope="module")
def docker_registry() -> Iterator[str]:
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed (apt install docker-registry)")
    base = Path(tempfile.mkdtemp(prefix="dy-reg-"))
    port = free_port()
    config = base / "config.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {base}/data\n"
        f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(base, ignore_errors=True)


def _wait_port(port: int) -> None:
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)


@pytest.fixture(scope="module")
def dockyard_registry() -> Iterator[str]:
    """dockyard's own registry server (`dockyard registry serve`), started through its CLI module."""
    try:
        import dockyard.cli.registry
        import dockyard.distribution.server.serve  # noqa: F401
    except ImportError:
        pytest.skip("dockyard's registry server is not available")
    base = Path(tempfile.mkdtemp(prefix="dy-dreg-"))
    port = free_port()
    code = (
        "import sys; from dockyard.cli.common import Cli; from dockyard.cli.registry import cmd_registry; "
        "sys.exit(cmd_registry(Cli(), sys.argv[1:]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--addr", f"127.0.0.1:{port}", "--root", str(base / "root")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        if proc.poll() is not None:
            pytest.skip("dockyard's registry server did not start")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(base, ignore_errors=True)


def test_roundtrip_with_dockyard_registry(tmp: Path, dockyard_registry: str) -> None:
    store = new_store(tmp / "src")
    name = f"{dockyard_registry}/test/ours:1"
    image = _import(store, name, {"ours.txt": os.urandom(100_000)})
    registry = Registry(dockyard_registry)
    meta = DistributionMetadata(tmp / "meta.json")
    pushed = Pusher(store, registry, lambda m: None, metadata=meta, chunk_size=32 * 1024).push(parse_docker_ref(name))
    store.tag(name, f"{dockyard_registry}/test/ours-copy:1")
    messages, emit = collect()
    Pusher(store, registry, emit, metadata=meta).push(parse_docker_ref(f"{dockyard_registry}/test/ours-copy:1"))
    assert statuses(messages).count("Mounted from test/ours") == 2
    pulled = Puller(new_store(tmp / "dst"), registry, lambda m: None).pull(parse_docker_ref(name))
    assert pulled.image.id == image.id and pulled.digest == pushed.digest


def _import(store: ImageStore, tag: str, files: dict[str, bytes], arch: str = "amd64") -> Any:
    """An image with two uncompressed layers (as import/load/commit leave them)."""
    base = layer_tar({"base.txt": b"base\n" * 100})
    top = layer_tar(files)
    diff_ids = [store.ingest_layer(io.BytesIO(base)), store.ingest_layer(io.BytesIO(top))]
    config = {
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "created": "2024-01-01T00:00:00Z",
    }
    return store.register(json.dumps(config).encode(), repo_tags=[tag])


def test_push_then_pull_roundtrip(tmp: Path, docker_registry: str) -> None:
    src, dst = new_store(tmp / "src"), new_store(tmp / "dst")
    name = f"{docker_registry}/test/round:1"
    image = _import(src, name, {"hello.txt": b"hello\n"})
    registry = Registry(docker_registry)
    meta = DistributionMetadata(tmp / "meta.json")
    messages, emit = collect()
    result = Pusher(src, registry, emit, metadata=meta).push(parse_docker_ref(name))
    assert statuses(messages).count("Pushed") == 2
    assert f"1: digest: {result.digest} size: {result.size}" in statuses(messages)
    assert {"Tag": "1", "Digest": result.digest, "Size": result.size} in [m.get("aux") for m in messages]
    assert src.resolve(name).repo_digests == [f"{docker_registry}/test/round@{result.digest}"]

    messages, emit = collect()
    Pusher(src, registry, emit, metadata=meta).push(parse_docker_ref(name))
    assert statuses(messages).count("Layer already exists") == 2  # HEAD first: nothing re-sent

    messages, emit = collect()
    pulled = Puller(dst, registry, emit, metadata=meta).pull(parse_docker_ref(name))
    assert pulled.image.id == image.id and not pulled.up_to_date
    assert pulled.image.diff_ids == image.diff_ids
    assert f"{docker_registry}/test/round@{result.digest}" in pulled.image.repo_digests
    assert all(layer.media_type == mf.DOCKER_LAYER_GZIP for layer in pulled.image.layers)
    assert statuses(messages).count("Pull complete") == 2
    assert any(m.get("progressDetail", {}).get("total") for m in messages if m.get("status") == "Downloading")
    root = dst.snapshotter  # the layer really is unpacked
    assert root.has_layer(pulled.image.chain_id)

    messages, emit = collect()
    again = Puller(dst, registry, emit).pull(parse_docker_ref(name))
    assert again.up_to_date and "Downloading" not in statuses(messages)

    by_digest = Puller(new_store(tmp / "dig"), registry, lambda m: None).pull(
        parse_docker_ref(f"{docker_registry}/test/round@{result.digest}")
    )
    assert by_digest.image.id == image.id and by_digest.image.repo_tags == []


def test_cross_repo_mount_and_chunked_upload(tmp: Path, docker_registry: str) -> None:
    store = new_store(tmp / "s")
    meta = DistributionMetadata(tmp / "meta.json")
    first = f"{docker_registry}/test/mount-a:1"
    _import(store, first, {"a.txt": os.urandom(300_000)})
    registry = Registry(docker_registry)
    messages, emit = collect()
    Pusher(store, registry, emit, metadata=meta, chunk_size=64 * 1024).push(parse_docker_ref(first))
    assert statuses(messages).count("Pushed") == 2
    second = f"{docker_registry}/test/mount-b:1"
    store.tag(first, second)
    messages, emit = collect()
    Pusher(store, registry, emit, metadata=meta).push(parse_docker_ref(second))
    assert statuses(messages).count("Mounted from test/mount-a") == 2
    pulled = Puller(new_store(tmp / "d"), registry, lambda m: None).pull(parse_docker_ref(second))
    assert pulled.image.id == store.resolve(first).id


def test_multi_platform_index_selection(tmp: Path, docker_registry: str) -> None:
    store = new_store(tmp / "s")
    registry = Registry(docker_registry)
    repo = "test/multi"
    descriptors = []
    for arch in ("amd64", "arm64"):
        tag = f"{docker_registry}/{repo}:{arch}"
        _import(store, tag, {"arch": arch.encode()}, arch=arch)
        pushed = Pusher(store, registry, lambda m: None).push(parse_docker_ref(tag))
        descriptors.append(
            {
                "mediaType": mf.DOCKER_MANIFEST,
                "digest": pushed.digest,
                "size": pushed.size,
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    index = json.dumps({"schemaVersion": 2, "mediaType": mf.DOCKER_MANIFEST_LIST, "manifests": descriptors}).encode()
    index_digest = registry.put_manifest(repo, "multi", index, mf.DOCKER_MANIFEST_LIST)
    ref = parse_docker_ref(f"{docker_registry}/{repo}:multi")
    arm = Puller(new_store(tmp / "arm"), registry, lambda m: None, platform=mf.Platform.parse("linux/arm64")).pull(ref)
    assert arm.image.config["architecture"] == "arm64"
    assert arm.digest == index_digest and f"{docker_registry}/{repo}@{index_digest}" in arm.image.repo_digests
    host = Puller(new_store(tmp / "host"), registry, lambda m: None).pull(ref)
    assert host.image.config["architecture"] == mf.host_platform().architecture
    with pytest.raises(mf.ManifestError, match="no matching manifest for linux/s390x"):
        Puller(new_store(tmp / "none"), registry, lambda m: None, platform=mf.Platform.parse("linux/s390x")).pull(ref)
    assert sorted(registry.tags(repo)) == ["amd64", "arm64", "multi"]


def test_missing_manifest_message(tmp: Path, docker_registry: str) -> None:
    with pytest.raises(NotFound, match=r"manifest for .*/test/none:nope not found: "):
        Puller(new_store(tmp / "s"), Registry(docker_registry), lambda m: None).pull(
            parse_docker_ref(f"{docker_registry}/test/none:nope")
        )


# -- an in-test registry: token auth, basic auth, corrupt and zstd blobs -----------------------------
class FakeRegistry:
    """Serves manifests and blobs from dicts behind Bearer (token server included) or Basic auth."""

    def __init__(self, scheme: str = "bearer", user: str = "alice", password: str = "s3cret") -> None:
        self.scheme = scheme
        self.user, self.password = user, password
        self.manifests: dict[str, tuple[str, bytes]] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.token_requests = 0
        self.search_results: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                fake.requests.append(f"{self.command} {self.path}")
                fake.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _basic_ok(self, header: str) -> bool:
        return header == "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()

    def reply(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        h.send_response(status)
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        path, _, query = h.path.partition("?")
        auth = h.headers.get("Authorization", "")
        if path == "/token":
            self.token_requests += 1
            if not self._basic_ok(auth):
                return self.reply(h, 401, b'{"details":"incorrect username or password"}')
            return self.reply(h, 200, json.dumps({"token": "good-token", "expires_in": 300}).encode())
        authorised = auth == "Bearer good-token" if self.scheme == "bearer" else self._basic_ok(auth)
        if not authorised:
            challenge = (
                f'Bearer realm="http://{self.host}/token",service="fake"'
                if self.scheme == "bearer"
                else 'Basic realm="fake"'
            )
            body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
            return self.reply(h, 401, body.encode(), {"WWW-Authenticate": challenge})
        if path == "/v2/":
            return self.reply(h, 200, b"{}")
        if path == "/v1/search":
            return self.reply(
                h,
                200,
                json.dumps(
                    {"query": query, "num_results": len(self.search_results), "results": self.search_results}
                ).encode(),
            )
        parts = path.split("/")
        if len(parts) >= 5 and parts[-2] == "manifests" and parts[-1] in self.manifests:
            media_type, data = self.manifests[parts[-1]]
            return self.reply(h, 200, data, {"Content-Type": media_type, "Docker-Content-Digest": digest_of(data)})
        if len(parts) >= 5 and parts[-2] == "blobs" and parts[-1] in self.blobs:
            return self.reply(h, 200, self.blobs[parts[-1]])
        self.reply(
            h, 404, json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}).encode()
        )

    def add_image(self, tag: str, layers: list[tuple[bytes, bytes, str]], arch: str = "amd64") -> str:
        """layers: (uncompressed tar, blob bytes, media type); returns the manifest digest."""
        diff_ids = [digest_of(plain) for plain, _, _ in layers]
        config = json.dumps(
            {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        ).encode()
        self.blobs[digest_of(config)] = config
        descriptors = []
        for _, blob, media_type in layers:
            self.blobs[digest_of(blob)] = blob
            descriptors.append({"mediaType": media_type, "digest": digest_of(blob), "size": len(blob)})
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mf.OCI_MANIFEST,
                "layers": descriptors,
                "config": {"mediaType": mf.OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            }
        ).encode()
        self.manifests[tag] = self.manifests[digest_of(manifest)] = (mf.OCI_MANIFEST, manifest)
        return digest_of(manifest)


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    server = FakeRegistry()
    try:
        yield server
    finally:
        server.close()


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, mtime=0)


def test_bearer_flow_zstd_and_gzip_layers(tmp: Path, fake: FakeRegistry) -> None:
    import zstandard

    one, two = layer_tar({"one": b"1"}), layer_tar({"two": b"2" * 5000})
    fake.add_image(
        "v1", [(one, _gzip(one), mf.OCI_LAYER_GZIP), (two, zstandard.ZstdCompressor().compress(two), mf.OCI_LAYER_ZSTD)]
    )
    registry = Registry(fake.host, AuthConfig("alice", "s3cret"))
    store = new_store(tmp / "s")
    result = Puller(store, registry, lambda m: None, max_concurrent=2).pull(parse_docker_ref(f"{fake.host}/app:v1"))
    assert result.image.diff_ids == [digest_of(one), digest_of(two)]
    assert fake.token_requests == 1  # one token, reused for the manifest, config and both blobs
    assert store.snapshotter.has_layer(result.image.chain_id)


def test_bad_credentials_unauthorized(tmp: Path, fake: FakeRegistry) -> None:
    one = layer_tar({"one": b"1"})
    fake.add_image("v1", [(one, one, mf.OCI_LAYER)])
    registry = Registry(fake.host, AuthConfig("alice", "wrong"))
    with pytest.raises(Unauthorized, match="unauthorized: incorrect username or password"):
        Puller(new_store(tmp / "s"), registry, lambda m: None).pull(parse_docker_ref(f"{fake.host}/app:v1"))
    with pytest.raises(Unauthorized, match="unauthorized"):
        Registry(fake.host).ping()
    Registry(fake.host, AuthConfig("alice", "s3cret")).ping()


def test_basic_auth_registry(tmp: Path) -> None:
    server = FakeRegistry(scheme="basic")
    try:
        one = layer_tar({"one": b"1"})
        server.add_image("v1", [(one, _gzip(one), mf.OCI_LAYER_GZIP)])
        with pytest.raises(Unauthorized, match="unauthorized: authentication required"):
            Registry(server.host).ping()
        with pytest.raises(Unauthorized, match="unauthorized"):
            Registry(server.host, AuthConfig("alice", "nope")).ping()
        registry = Registry(server.host, AuthConfig("alice", "s3cret"))
        result = Puller(new_store(tmp / "s"), registry, lambda m: None).pull(parse_docker_ref(f"{server.host}/a:v1"))
        assert result.image.diff_ids == [digest_of(one)]
    finally:
        server.close()


def test_corrupt_layer_fails_nothing_unpacked_then_resumes(tmp: Path, fake: FakeRegistry) -> None:
    store = new_store(tmp / "s")
    good, bad = layer_tar({"good": b"g" * 1000}), layer_tar({"bad": b"b" * 1000})
    earlier = fake.add_image("old", [(good, _gzip(good), mf.OCI_LAYER_GZIP)])
    registry = Registry(fake.host, AuthConfig("alice", "s3cret"))
    before = Puller(store, registry, lambda m: None).pull(parse_docker_ref(f"{fake.host}/app:old"))
    assert before.digest == earlier
    other = layer_tar({"other": b"o" * 2000})
    bad_blob = _gzip(bad)
    fake.add_image("new", [(other, _gzip(other), mf.OCI_LAYER_GZIP), (bad, bad_blob, mf.OCI_LAYER_GZIP)])
    fake.blobs[digest_of(bad_blob)] = _gzip(layer_tar({"evil": b"x"}))  # served bytes do not match
    layers_before = sorted(os.listdir(tmp / "s" / "storage"))
    with pytest.raises(DigestMismatch, match=f"filesystem layer verification failed for digest {digest_of(bad_blob)}"):
        Puller(store, registry, lambda m: None).pull(parse_docker_ref(f"{fake.host}/app:new"))
    assert not store.content.exists(digest_of(bad_blob))
    assert sorted(os.listdir(tmp / "s" / "storage")) == layers_before
    assert not store.snapshotter.has_layer(digest_of(other))  # nothing of the failed image was unpacked
    assert store.resolve(f"{fake.host}/app:old").id == before.image.id  # earlier image intact
    # resume: the verified layer stays in the content store and is not fetched again
    fake.blobs[digest_of(bad_blob)] = bad_blob
    fake.requests.clear()
    messages, emit = collect()
    Puller(store, registry, emit).pull(parse_docker_ref(f"{fake.host}/app:new"))
    fetched = [r for r in fake.requests if "/blobs/" in r]
    assert not any(digest_of(_gzip(other)) in r for r in fetched)
    assert any(digest_of(bad_blob) in r for r in fetched)
    resumed = digest_of(_gzip(other)).removeprefix("sha256:")[:12]
    assert {"status": "Download complete", "id": resumed} in messages


def test_redirect_drops_authorization_across_hosts(tmp: Path, fake: FakeRegistry) -> None:
    """Blob GETs may redirect to a CDN: the registry's token must not follow to another host."""
    seen: list[str | None] = []
    payload = layer_tar({"cdn": b"c"})

    class Cdn(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    cdn = ThreadingHTTPServer(("127.0.0.2", 0), Cdn)
    threading.Thread(target=cdn.serve_forever, daemon=True).start()
    try:
        fake.add_image("cdn", [(payload, payload, mf.OCI_LAYER)])
        original = fake.handle

        def handle(h: BaseHTTPRequestHandler) -> None:
            if f"/blobs/{digest_of(payload)}" in h.path and h.headers.get("Authorization"):
                return fake.reply(h, 307, b"", {"Location": f"http://127.0.0.2:{cdn.server_address[1]}/blob"})
            return original(h)

        fake.handle = handle  # type: ignore[method-assign]
        registry = Registry(fake.host, AuthConfig("alice", "s3cret"))
        result = Puller(new_store(tmp / "s"), registry, lambda m: None).pull(parse_docker_ref(f"{fake.host}/a:cdn"))
        assert result.image.diff_ids == [digest_of(payload)]
        assert seen == [None]
    finally:
        cdn.shutdown()
        cdn.server_close()


def test_search_v1(fake: FakeRegistry) -> None:
    fake.search_results = [{"name": "app", "description": "an app", "star_count": 3, "is_official": False}]
    data = Registry(fake.host, AuthConfig("alice", "s3cret")).search("app", 10)
    assert data["results"][0]["name"] == "app"
    assert any(r.startswith("GET /v1/search?q=app&n=10") for r in fake.requests)
