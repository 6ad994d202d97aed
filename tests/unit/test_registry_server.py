"""dockyard's registry server over real HTTP on 127.0.0.1: distribution spec, storage safety, auth, gc."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.distribution.server.auth import hash_password
from dockyard.distribution.server.gc import collect
from dockyard.distribution.server.serve import RegistryConfig, create_server

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def code(self) -> str:
        return self.json()["errors"][0]["code"]


class Client:
    def __init__(self, port: int, auth: str | None = None) -> None:
        self.port = port
        self.auth = auth
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def __call__(self, method: str, path: str, body: bytes | None = None, **headers: str) -> Reply:
        hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
        if self.auth and "Authorization" not in hdrs:
            hdrs["Authorization"] = self.auth
        self.conn.request(method, path, body=body, headers=hdrs)
        resp = self.conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha(data)
        reply = self("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data)
        assert reply.status == 201, reply
        return digest

    def push_image(self, repo: str, tag: str, layer: bytes = b"layer-data", **extra) -> tuple[str, bytes]:
        config = json.dumps({"os": "linux", "architecture": "amd64"}).encode()
        manifest = manifest_for(
            self.push_blob(repo, config), len(config), self.push_blob(repo, layer), len(layer), **extra
        )
        reply = self("PUT", f"/v2/{repo}/manifests/{tag}", manifest, Content_Type=OCI_MANIFEST)
        assert reply.status == 201, reply
        return reply.headers["docker-content-digest"], manifest


def manifest_for(config: str, config_size: int, layer: str, layer_size: int, **extra) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size}],
            **extra,
        }
    ).encode()


@pytest.fixture
def make_registry(tmp_path: Path):
    servers = []

    def make(**kw) -> tuple[int, Path]:
        root = kw.pop("root", tmp_path / "root")
        kw.setdefault("port", 0)
        server = create_server(RegistryConfig(root=str(root), **kw))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return server.server_address[1], root

    yield make
    for server, thread in servers:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def reg(make_registry) -> tuple[Client, Path]:
    port, root = make_registry()
    return Client(port), root


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_base_endpoint_and_headers(reg):
    client, _ = reg
    reply = client("GET", "/v2/")
    assert reply.status == 200 and reply.json() == {}
    assert reply.headers["docker-distribution-api-version"] == "registry/2.0"
    assert client("GET", "/nothing").status == 404


def test_chunked_upload_range_and_blob_reads(reg):
    client, root = reg
    blob = os.urandom(300_000)
    start = client("POST", "/v2/lib/app/blobs/uploads/")
    assert start.status == 202 and start.headers["docker-upload-uuid"]
    location = start.headers["location"]
    assert (
        client(
            "PATCH", location, blob[:100_000], Content_Range="0-99999", Content_Type="application/octet-stream"
        ).headers["range"]
        == "0-99999"
    )
    out_of_order = client("PATCH", location, blob[:10], Content_Range="5-14")
    assert out_of_order.status == 416 and out_of_order.code == "BLOB_UPLOAD_INVALID"
    # Go's client streams PATCH bodies with Transfer-Encoding: chunked and no Content-Range.
    client.conn.request(
        "PATCH", location, body=iter([blob[100_000:150_000], blob[150_000:200_000]]), encode_chunked=True
    )
    resp = client.conn.getresponse()
    resp.read()
    assert resp.status == 202 and resp.getheader("Range") == "0-199999"
    assert client("GET", location).headers["range"] == "0-199999"
    done = client("PUT", f"{location}?digest={sha(blob)}", blob[200_000:])
    assert done.status == 201 and done.headers["docker-content-digest"] == sha(blob)
    assert done.headers["location"] == f"/v2/lib/app/blobs/{sha(blob)}"
    assert client("GET", location).code == "BLOB_UPLOAD_UNKNOWN"
    assert not list((root / "uploads").iterdir())
    full = client("GET", f"/v2/lib/app/blobs/{sha(blob)}")
    assert full.status == 200 and full.body == blob and full.headers["docker-content-digest"] == sha(blob)
    head = client("HEAD", f"/v2/lib/app/blobs/{sha(blob)}")
    assert head.status == 200 and head.headers["content-length"] == str(len(blob)) and head.body == b""
    part = client("GET", f"/v2/lib/app/blobs/{sha(blob)}", Range="bytes=1000-1999")
    assert part.status == 206 and part.body == blob[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(blob)}"
    assert client("GET", f"/v2/lib/app/blobs/{sha(blob)}", Range="bytes=-10").body == blob[-10:]
    assert client("GET", f"/v2/lib/app/blobs/{sha(blob)}", Range=f"bytes={len(blob)}-").status == 416
    # The blob is linked to lib/app only: another repository does not see it.
    assert client("GET", f"/v2/other/blobs/{sha(blob)}").code == "BLOB_UNKNOWN"


def test_wrong_digest_stores_nothing(reg):
    client, root = reg
    reply = client("POST", f"/v2/lib/app/blobs/uploads/?digest={sha(b'other')}", b"content")
    assert reply.status == 400 and reply.code == "DIGEST_INVALID"
    start = client("POST", "/v2/lib/app/blobs/uploads/")
    reply = client("PUT", f"{start.headers['location']}?digest={sha(b'nope')}", b"content")
    assert reply.code == "DIGEST_INVALID"
    assert client("PUT", f"{start.headers['location']}?digest=sha256:zz", b"").status in (400, 404)
    assert files_under(root / "blobs") == []
    assert list((root / "uploads").iterdir()) == []
    assert client("HEAD", f"/v2/lib/app/blobs/{sha(b'content')}").status == 404


def test_manifest_put_get_validation(reg):
    client, _ = reg
    digest, manifest = client.push_image("lib/app", "v1")
    got = client("GET", "/v2/lib/app/manifests/v1")
    assert got.body == manifest and got.headers["content-type"] == OCI_MANIFEST
    assert got.headers["docker-content-digest"] == digest == sha(manifest)
    assert client("HEAD", f"/v2/lib/app/manifests/{digest}").headers["content-length"] == str(len(manifest))
    missing = manifest_for(sha(b"x"), 1, sha(b"y"), 1)
    reply = client("PUT", "/v2/lib/app/manifests/v2", missing, Content_Type=OCI_MANIFEST)
    assert reply.status == 400 and reply.code == "MANIFEST_BLOB_UNKNOWN"
    reply = client("PUT", f"/v2/lib/app/manifests/{sha(b'x')}", manifest, Content_Type=OCI_MANIFEST)
    assert reply.code == "DIGEST_INVALID"
    assert client("PUT", "/v2/lib/app/manifests/v3", b"{not json", Content_Type=OCI_MANIFEST).code == "MANIFEST_INVALID"
    assert client("GET", "/v2/lib/app/manifests/nope").code == "MANIFEST_UNKNOWN"
    assert client("GET", "/v2/never/manifests/v1").code == "NAME_UNKNOWN"
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest)}],
        }
    ).encode()
    assert client("PUT", "/v2/lib/app/manifests/multi", index, Content_Type=OCI_INDEX).status == 201
    bad_index = index.replace(digest.encode(), sha(b"zzz").encode())
    assert client("PUT", "/v2/lib/app/manifests/m2", bad_index, Content_Type=OCI_INDEX).code == "MANIFEST_BLOB_UNKNOWN"


@pytest.mark.parametrize("name", ["Upper/case", "a/../../etc", "..", "a//b", "_private", "a/-b", "%2e%2e/x"])
def test_names_outside_the_grammar_are_refused(reg, tmp_path: Path, name: str):
    client, root = reg
    for method, path in (
        ("GET", f"/v2/{name}/tags/list"),
        ("POST", f"/v2/{name}/blobs/uploads/"),
        ("PUT", f"/v2/{name}/manifests/latest"),
    ):
        reply = client(method, path, b"{}" if method != "GET" else None)
        assert reply.status == 400 and reply.code == "NAME_INVALID", (method, path, reply)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]
    assert not (root / "repositories").exists() or list((root / "repositories").iterdir()) == []


def test_tags_and_catalog_pagination(reg):
    client, _ = reg
    for tag in ("c", "a", "b", "d"):
        client.push_image("lib/app", tag)
    client.push_image("lib/other", "x")
    assert client("GET", "/v2/lib/app/tags/list").json() == {"name": "lib/app", "tags": ["a", "b", "c", "d"]}
    page = client("GET", "/v2/lib/app/tags/list?n=2")
    assert page.json()["tags"] == ["a", "b"]
    assert page.headers["link"] == '</v2/lib/app/tags/list?last=b&n=2>; rel="next"'
    last = client("GET", "/v2/lib/app/tags/list?n=2&last=b")
    assert last.json()["tags"] == ["c", "d"] and "link" not in last.headers
    assert client("GET", "/v2/lib/app/tags/list?n=x").code == "PAGINATION_NUMBER_INVALID"
    assert client("GET", "/v2/_catalog").json() == {"repositories": ["lib/app", "lib/other"]}
    cat = client("GET", "/v2/_catalog?n=1")
    assert cat.json() == {"repositories": ["lib/app"]} and "last=lib%2Fapp" in cat.headers["link"]
    search = client("GET", "/v1/search?q=oth&n=10").json()
    assert search["num_results"] == 1 and search["results"][0] == {
        "name": "lib/other",
        "description": "",
        "star_count": 0,
        "is_official": False,
        "is_automated": False,
    }


def test_cross_repository_mount(reg):
    client, _ = reg
    digest = client.push_blob("src/repo", b"shared layer")
    mounted = client("POST", f"/v2/dst/repo/blobs/uploads/?mount={digest}&from=src/repo")
    assert mounted.status == 201 and mounted.headers["docker-content-digest"] == digest
    assert client("GET", f"/v2/dst/repo/blobs/{digest}").body == b"shared layer"
    fallback = client("POST", f"/v2/third/blobs/uploads/?mount={sha(b'absent')}&from=src/repo")
    assert fallback.status == 202 and "/blobs/uploads/" in fallback.headers["location"]


def test_referrers(reg):
    client, _ = reg
    subject_digest, subject = client.push_image("lib/app", "v1")
    desc = {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject)}
    config = b"{}"
    cfg = client.push_blob("lib/app", config)
    layer = client.push_blob("lib/app", b"signature")
    referrer = json.loads(
        manifest_for(cfg, 2, layer, 9, subject=desc, artifactType="application/vnd.example.sig", annotations={"k": "v"})
    )
    body = json.dumps(referrer).encode()
    reply = client("PUT", f"/v2/lib/app/manifests/{sha(body)}", body, Content_Type=OCI_MANIFEST)
    assert reply.status == 201 and reply.headers["oci-subject"] == subject_digest
    index = client("GET", f"/v2/lib/app/referrers/{subject_digest}")
    assert index.headers["content-type"] == OCI_INDEX
    assert index.json()["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": sha(body),
            "size": len(body),
            "artifactType": "application/vnd.example.sig",
            "annotations": {"k": "v"},
        }
    ]
    filtered = client("GET", f"/v2/lib/app/referrers/{subject_digest}?artifactType=other/type")
    assert filtered.json()["manifests"] == [] and filtered.headers["oci-filters-applied"] == "artifactType"
    assert client("DELETE", f"/v2/lib/app/manifests/{sha(body)}").status == 202
    assert client("GET", f"/v2/lib/app/referrers/{subject_digest}").json()["manifests"] == []


def test_delete_and_gc(reg):
    client, root = reg
    keep_digest, _ = client.push_image("lib/app", "keep", layer=b"kept layer")
    gone_digest, _ = client.push_image("lib/app", "gone", layer=b"dropped layer")
    assert client("DELETE", "/v2/lib/app/manifests/gone").status == 202  # untag
    assert client("GET", "/v2/lib/app/manifests/gone").code == "MANIFEST_UNKNOWN"
    assert client("GET", f"/v2/lib/app/manifests/{gone_digest}").status == 200
    assert client("DELETE", f"/v2/lib/app/manifests/{gone_digest}").status == 202
    assert client("GET", f"/v2/lib/app/manifests/{gone_digest}").code == "MANIFEST_UNKNOWN"
    orphan = client.push_blob("lib/app", b"orphan")
    assert client("DELETE", f"/v2/lib/app/blobs/{orphan}").status == 202
    assert client("DELETE", f"/v2/lib/app/blobs/{orphan}").code == "BLOB_UNKNOWN"
    stale = client("POST", "/v2/lib/app/blobs/uploads/").headers["docker-upload-uuid"]
    old = time.time() - 7 * 86400
    for p in [root / "uploads" / stale, *(root / "uploads" / stale).iterdir()]:
        os.utime(p, (old, old))
    before = files_under(root / "blobs")

    dry = collect(str(root), dry_run=True, min_age=0)
    assert set(dry.blobs) == {gone_digest, sha(b"dropped layer"), orphan} and dry.uploads == [stale]
    assert files_under(root / "blobs") == before
    young = collect(str(root), min_age=3600)
    assert young.blobs == [] and files_under(root / "blobs") == before

    result = collect(str(root), min_age=0)
    assert set(result.blobs) == {gone_digest, sha(b"dropped layer"), orphan}
    assert result.freed == sum(len(b) for b in (b"dropped layer", b"orphan")) + len(
        client("GET", f"/v2/lib/app/manifests/{keep_digest}").body
    )  # same-shaped manifest
    assert not (root / "uploads" / stale).exists()
    assert client("GET", "/v2/lib/app/manifests/keep").status == 200
    assert client("GET", f"/v2/lib/app/blobs/{sha(b'kept layer')}").body == b"kept layer"
    assert client("GET", f"/v2/lib/app/blobs/{sha(b'dropped layer')}").code == "BLOB_UNKNOWN"
    untagged = client.push_image("lib/app", "tmp", layer=b"temporary")[0]
    client("DELETE", "/v2/lib/app/manifests/tmp")
    assert collect(str(root), delete_untagged=True, min_age=0).manifests == [f"lib/app@{untagged}"]
    assert client("GET", f"/v2/lib/app/manifests/{untagged}").code == "MANIFEST_UNKNOWN"


def test_concurrent_uploads_of_the_same_blob(reg):
    client, root = reg
    blob = os.urandom(2 << 20)
    results: list[int] = []

    def push() -> None:
        c = Client(client.port)
        start = c("POST", "/v2/lib/app/blobs/uploads/")
        for i in range(0, len(blob), 512 << 10):
            c("PATCH", start.headers["location"], blob[i : i + (512 << 10)])
        results.append(c("PUT", f"{start.headers['location']}?digest={sha(blob)}").status)

    threads = [threading.Thread(target=push) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [201] * 6
    assert client("GET", f"/v2/lib/app/blobs/{sha(blob)}").body == blob
    assert files_under(root / "blobs") == [f"sha256/{sha(blob)[7:]}"]
    assert list((root / "uploads").iterdir()) == []


def test_killed_server_never_serves_a_partial_blob(tmp_path: Path):
    """SIGKILL the real server process in the middle of an upload, restart it: the blob is unknown."""
    root = tmp_path / "root"
    blob = os.urandom(4 << 20)

    def start() -> tuple[subprocess.Popen, int]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "dockyard", "registry", "serve", "--addr", f"127.0.0.1:{port}", "--root", str(root)],
            stderr=subprocess.PIPE,
        )
        assert b"listening" in proc.stderr.readline()
        return proc, port

    proc, port = start()
    try:
        client = Client(port)
        location = client("POST", "/v2/lib/app/blobs/uploads/").headers["location"]
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(
            f"PUT {location}?digest={sha(blob)} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(blob)}\r\n\r\n".encode()
            + blob[: len(blob) // 2]
        )
        deadline = time.time() + 10
        data = next((root / "uploads").iterdir()) / "data"
        while data.stat().st_size < len(blob) // 4 and time.time() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        sock.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    proc, port = start()
    try:
        client = Client(port)
        assert client("HEAD", f"/v2/lib/app/blobs/{sha(blob)}").status == 404
        assert files_under(root / "blobs") == []
        reply = client("PUT", f"{location}?digest={sha(blob)}")  # finishing the torn upload fails the digest
        assert reply.code == "DIGEST_INVALID" and files_under(root / "blobs") == []
    finally:
        proc.terminate()
        proc.wait(10)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{hash_password('wonder', 4)}\nbob:{hash_password('builder', 4)}\n")
    return path


def test_htpasswd_basic_auth_and_acl(make_registry, htpasswd: Path, tmp_path: Path):
    acl = tmp_path / "config.json"
    acl.write_text(
        json.dumps(
            {
                "acl": [
                    {"account": "*", "name": "${account}/*", "actions": ["*"]},
                    {"account": "*", "name": "public/*", "actions": ["pull", "push"]},
                    {"account": "anonymous", "name": "public/*", "actions": ["pull"]},
                ]
            }
        )
    )
    port, _ = make_registry(htpasswd=str(htpasswd), config=str(acl))
    anonymous, alice = Client(port), Client(port, _basic("alice", "wonder"))
    reply = anonymous("GET", "/v2/")
    assert reply.status == 401 and reply.code == "UNAUTHORIZED"
    assert reply.headers["www-authenticate"] == 'Basic realm="dockyard-registry"'
    assert Client(port, _basic("alice", "wrong"))("GET", "/v2/").status == 401
    assert Client(port, "Basic !!!")("GET", "/v2/").status == 401
    assert alice("GET", "/v2/").status == 200
    alice.push_image("alice/app", "v1")
    alice.push_image("public/app", "v1")
    assert anonymous("GET", "/v2/public/app/manifests/v1").status == 200
    push = anonymous("POST", "/v2/public/app/blobs/uploads/")
    assert push.status == 401 and "www-authenticate" in push.headers
    bob = Client(port, _basic("bob", "builder"))
    assert bob("GET", "/v2/alice/app/manifests/v1").code == "DENIED"
    assert bob("GET", "/v2/alice/app/manifests/v1").status == 403
    assert [r["name"] for r in bob("GET", "/v1/search?q=app").json()["results"]] == ["public/app"]
    assert alice("GET", "/v2/_catalog").json()["repositories"] == ["alice/app", "public/app"]
    # apache's `htpasswd -B` writes $2y$ hashes: accepted too.
    htpasswd.write_text(f"carol:{hash_password('pw', 4).replace('$2b$', '$2y$', 1)}\n")
    assert Client(port, _basic("carol", "pw"))("GET", "/v2/").status == 200


def test_token_flow(make_registry, htpasswd: Path, tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    realm = f"http://127.0.0.1:{port}/auth/token"
    made, _ = make_registry(port=port, htpasswd=str(htpasswd), token_realm=realm, token_key=str(tmp_path / "token.pem"))
    assert made == port and (tmp_path / "token.pem").stat().st_mode & 0o777 == 0o600
    client = Client(port)
    reply = client("GET", "/v2/lib/app/manifests/v1")
    assert reply.status == 401
    assert reply.headers["www-authenticate"] == (
        f'Bearer realm="{realm}",service="127.0.0.1:{port}",scope="repository:lib/app:pull"'
    )

    def token(scope: str, auth: str | None = _basic("alice", "wonder")) -> str:
        headers = {"Authorization": auth} if auth else {}
        got = client("GET", f"/auth/token?service=127.0.0.1:{port}&scope={scope}", **headers)
        assert got.status == 200, got
        body = got.json()
        assert body["expires_in"] >= 60 and body["access_token"] == body["token"]
        return body["token"]

    assert client("GET", f"/auth/token?service=127.0.0.1:{port}", Authorization=_basic("alice", "no")).status == 401
    assert client("GET", "/auth/token?service=elsewhere").code == "DENIED"
    push_token = token("repository:lib/app:pull,push")
    writer = Client(port, f"Bearer {push_token}")
    writer.push_image("lib/app", "v1")
    reader = Client(port, f"Bearer {token('repository:lib/app:pull', None)}")
    denied = reader("GET", "/v2/lib/app/manifests/v1")  # anonymous gets nothing without an ACL
    assert denied.status == 401 and 'error="insufficient_scope"' in denied.headers["www-authenticate"]
    assert Client(port, f"Bearer {token('repository:lib/app:pull')}")("GET", "/v2/lib/app/manifests/v1").status == 200
    assert writer("GET", "/v2/other/tags/list").status == 401
    forged = push_token.rsplit(".", 1)[0] + "." + base64.urlsafe_b64encode(b"\0" * 64).rstrip(b"=").decode()
    assert Client(port, f"Bearer {forged}")("GET", "/v2/lib/app/manifests/v1").status == 401
    catalog = Client(port, f"Bearer {token('registry:catalog:*')}")("GET", "/v2/_catalog")
    assert catalog.json() == {"repositories": ["lib/app"]}


def test_cli_htpasswd_and_gc(tmp_path: Path):
    import bcrypt

    path = tmp_path / "htpasswd"
    run = [sys.executable, "-m", "dockyard", "registry"]
    subprocess.run([*run, "htpasswd", "--password-stdin", str(path), "dave"], input=b"secret\n", check=True)
    subprocess.run([*run, "htpasswd", "-p", "other", str(path), "erin"], check=True)
    subprocess.run([*run, "htpasswd", "-p", "changed", str(path), "dave"], check=True)
    entries = dict(line.split(":", 1) for line in path.read_text().split())
    assert sorted(entries) == ["dave", "erin"] and path.stat().st_mode & 0o777 == 0o600
    assert bcrypt.checkpw(b"changed", entries["dave"].encode())
    out = subprocess.run(
        [*run, "gc", "--root", str(tmp_path / "r"), "--dry-run", "--min-age", "0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "0 blobs marked" in out


def test_tls_probe_on_plain_http_is_refused_at_once(reg):
    """docker and skopeo try HTTPS first on "insecure" registries: a ClientHello must fail fast, not hang."""
    client, _ = reg
    with socket.create_connection(("127.0.0.1", client.port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03")
        assert sock.recv(100).startswith(b"HTTP/1.1 400 ")
        assert sock.recv(100) == b""
