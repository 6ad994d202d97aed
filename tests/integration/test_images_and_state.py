"""Images through the daemon (import, tag, rmi, history, save/load, export) and daemon restarts."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

from tests.helpers.rootfs import tar_bytes


def _image_id(dy, ref: str) -> str:
    return dy.out("inspect", "--type", "image", "-f", "{{.Id}}", ref).strip()


def test_images_tag_history_rmi(dy):
    images = dy.out("images")
    assert images.splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert "busybox" in images
    dy.out("tag", "busybox", "example.com/team/tool:v1")
    assert _image_id(dy, "example.com/team/tool:v1") == _image_id(dy, "busybox")
    listed = dy.out("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert "example.com/team/tool:v1" in listed and "busybox:latest" in listed
    history = dy.out("history", "busybox")
    assert history.splitlines()[0].split()[:2] == ["IMAGE", "CREATED"]
    out = dy.out("rmi", "example.com/team/tool:v1")
    assert "Untagged: example.com/team/tool:v1" in out
    assert dy.cli("inspect", "--type", "image", "example.com/team/tool:v1").returncode == 1


def test_rmi_in_use_conflict(dy):
    dy.out("tag", "busybox", "inuse:1")
    cid = dy.out("create", "inuse:1", "true").strip()
    only_ref = dy.cli("rmi", _image_id(dy, "inuse:1"))
    assert only_ref.returncode == 1 and b"conflict" in only_ref.stderr
    dy.out("rm", cid)
    dy.out("rmi", "inuse:1")


def test_save_load_round_trip_keeps_digests(dy, tmp_path: Path):
    dy.out("tag", "busybox", "roundtrip:1")
    before = json.loads(dy.out("inspect", "--type", "image", "roundtrip:1"))[0]
    archive = tmp_path / "rt.tar"
    dy.out("save", "-o", str(archive), "roundtrip:1")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert "manifest.json" in names
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["roundtrip:1"]
    dy.out("rmi", "roundtrip:1")
    assert dy.cli("inspect", "--type", "image", "roundtrip:1").returncode == 1
    loaded = dy.out("load", "-i", str(archive))
    assert "Loaded image: roundtrip:1" in loaded
    after = json.loads(dy.out("inspect", "--type", "image", "roundtrip:1"))[0]
    assert after["Id"] == before["Id"]
    assert after["RootFS"]["Layers"] == before["RootFS"]["Layers"]
    assert dy.out("run", "--rm", "roundtrip:1", "echo", "ok") == "ok\n"
    dy.out("rmi", "roundtrip:1")


def test_load_rejects_corrupted_layer(dy, tmp_path: Path):
    dy.out("tag", "busybox", "corrupt:1")
    archive = tmp_path / "c.tar"
    dy.out("save", "-o", str(archive), "corrupt:1")
    dy.out("rmi", "corrupt:1")
    bad = tmp_path / "bad.tar"
    with tarfile.open(archive) as src, tarfile.open(bad, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if data is not None and member.size > 100_000:  # the layer: flip one byte
                data = data[:5000] + bytes([data[5000] ^ 0xFF]) + data[5001:]
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    proc = dy.cli("load", "-i", str(bad))
    assert proc.returncode != 0
    assert dy.cli("inspect", "--type", "image", "corrupt:1").returncode == 1


def test_export_shows_whiteout_deletion(dy, tmp_path: Path):
    cid = dy.out("run", "-d", "busybox", "sh", "-c", "rm /etc/group; echo new > /etc/added; sleep 100").strip()
    time.sleep(0.5)
    dy.out("stop", "-t", "0", cid)
    out = tmp_path / "export.tar"
    dy.out("export", "-o", str(out), cid)
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert "etc/passwd" in names or "./etc/passwd" in names
        assert not {"etc/group", "./etc/group"} & names
        assert not any(".wh." in n for n in names)
        added = tar.extractfile(next(n for n in names if n.endswith("etc/added"))).read()
    assert added == b"new\n"


def test_import_rejects_escaping_tar(dy, tmp_path: Path):
    sentinel = tmp_path / "outside"
    sentinel.mkdir()
    evil = tar_bytes(
        [
            (tarfile.TarInfo("../../../../../../" + str(sentinel).lstrip("/") + "/pwned"), b"x"),
            (_symlink("escape", str(sentinel)), None),
            (tarfile.TarInfo("escape/through-link"), b"y"),
            (tarfile.TarInfo("bin/ok"), b"fine"),
        ]
    )
    proc = dy.cli("import", "-", "evil:1", input=evil)
    assert list(sentinel.iterdir()) == []
    if proc.returncode == 0:  # the safe entries imported, the hostile ones dropped
        dy.cli("run", "--rm", "evil:1", "/bin/ok")
        assert list(sentinel.iterdir()) == []
        dy.out("rmi", "evil:1")


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def test_daemon_restart_keeps_running_container(dy):
    cid = dy.out("run", "-d", "busybox", "sh", "-c", "echo before; sleep 3; echo after; exit 5").strip()
    time.sleep(0.3)
    dy.kill()  # SIGKILL: no chance to clean up
    dy.start()
    info = json.loads(dy.out("inspect", cid))[0]
    assert info["State"]["Running"] is True
    assert dy.out("wait", cid, timeout=30).strip() == "5"
    assert dy.out("logs", cid).split() == ["before", "after"]
    with open("/proc/self/mountinfo") as f:
        assert cid not in f.read()


def test_daemon_restart_sees_exit_that_happened_while_down(dy):
    cid = dy.out("run", "-d", "busybox", "sh", "-c", "sleep 1; exit 9").strip()
    dy.stop()
    time.sleep(2)
    dy.start()
    deadline = time.time() + 10
    while dy.out("inspect", "-f", "{{.State.Running}}", cid).strip() == "true" and time.time() < deadline:
        time.sleep(0.1)
    assert dy.out("inspect", "-f", "{{.State.ExitCode}}", cid).strip() == "9"


def test_daemon_killed_mid_import_leaves_clean_store(dy, tmp_path: Path):
    import socket

    tar = (dy.base / "busybox.tar").read_bytes()
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(dy.socket))
    sock.sendall(
        b"POST /v1.47/images/create?fromSrc=-&repo=halfway&tag=1 HTTP/1.1\r\nHost: d\r\n"
        b"Content-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    half = tar[: len(tar) // 2]
    sock.sendall(b"%x\r\n%s\r\n" % (len(half), half))
    time.sleep(0.5)
    dy.kill()
    sock.close()
    dy.start()
    assert "halfway" not in dy.out("images")
    ingest = dy.data_root / "content" / "ingest"
    assert not ingest.exists() or list(ingest.iterdir()) == []
    dy.cli("import", "-", "halfway:1", input=tar, check=True)
    assert dy.out("run", "--rm", "halfway:1", "echo", "whole") == "whole\n"
    dy.out("rmi", "halfway:1")
