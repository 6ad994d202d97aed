"""top, stats, pause/unpause, update, commit, cp, diff, port, prune, df through dockyard's own CLI."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
import uuid
from pathlib import Path

from dockyard.client.api import APIClient
from dockyard.client.errors import APIError

LOOP = "while true; do sleep 1; done"


def _name() -> str:
    return "v-" + uuid.uuid4().hex[:12]


def _run_bg(dy, *args: str, script: str = LOOP) -> str:
    name = _name()
    dy.out("run", "-d", "--name", name, *args, "busybox", "sh", "-c", script)
    return name


def _api(dy) -> APIClient:
    return APIClient(dy.host)


def _wait_for_path(dy, name: str, path: str) -> None:
    """The container's script runs after `run -d` returns: wait until it created `path`."""
    api = _api(dy)
    for _ in range(100):
        try:
            api.stat_container_path(name, path)
            return
        except APIError:
            time.sleep(0.05)
    raise AssertionError(f"{path} never appeared in {name}")


def test_top_lists_container_processes(dy):
    name = _run_bg(dy)
    out = dy.out("top", name).splitlines()
    assert out[0].split()[:3] == ["UID", "PID", "PPID"]
    assert any("sleep" in line for line in out[1:]) and any(LOOP in line for line in out[1:])
    assert "COMMAND" in dy.out("top", name, "aux").splitlines()[0]
    stopped = dy.cli("top", dy.out("create", "busybox").strip())
    assert stopped.returncode == 1 and b"is not running" in stopped.stderr


def test_stats_has_docker_shape_and_cpu(dy):
    name = _run_bg(dy, script="while true; do :; done")  # busy: CPU % must show up
    stats = json.loads(_api(dy).container_stats(name, stream=False).content())
    assert {
        "read",
        "preread",
        "cpu_stats",
        "precpu_stats",
        "memory_stats",
        "pids_stats",
        "blkio_stats",
        "name",
        "id",
    } <= stats.keys()
    assert stats["precpu_stats"]["system_cpu_usage"] > 0  # two samples: the CLI can compute CPU %
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] > stats["precpu_stats"]["cpu_usage"]["total_usage"]
    assert stats["memory_stats"]["usage"] > 0 and stats["pids_stats"]["current"] >= 1
    line = dy.out("stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}} {{.PIDs}}", name).split()
    assert line[0] == name and float(line[1].rstrip("%")) > 1.0 and int(line[2]) >= 1
    one_shot = json.loads(_api(dy).container_stats(name, stream=False, one_shot=True).content())
    assert one_shot["preread"].startswith("0001-01-01")


def test_pause_unpause_and_rules(dy):
    name = _run_bg(dy)
    dy.out("pause", name)
    info = json.loads(dy.out("inspect", name))[0]["State"]
    assert info["Paused"] and info["Status"] == "paused" and info["Running"]
    assert "(Paused)" in dy.out("ps", "--filter", f"name={name}", "--format", "{{.Status}}")
    again = dy.cli("pause", name)
    assert again.returncode == 1 and b"is already paused" in again.stderr
    dy.out("unpause", name)
    assert json.loads(dy.out("inspect", name))[0]["State"]["Status"] == "running"
    assert b"is not paused" in dy.cli("unpause", name).stderr
    dy.out("pause", name)
    dy.out("kill", name)  # a paused container still dies on kill
    assert dy.out("wait", name).strip() == "137"
    try:
        _api(dy).pause_container(name)
    except APIError as exc:
        assert exc.status == 409 and "is not running" in str(exc)
    else:
        raise AssertionError("pause of a stopped container must fail")


def _cgroup_file(container_id: str, v1: str, v2: str) -> str:
    for candidate in (
        f"/sys/fs/cgroup/{v1}".replace("ID", container_id),
        f"/sys/fs/cgroup/dockyard/{container_id}/{v2}",
    ):
        if os.path.exists(candidate):
            return Path(candidate).read_text().strip()
    raise AssertionError("no cgroup file")


def test_update_applies_to_running_cgroup_and_persists(dy):
    name = _run_bg(dy)
    cid = json.loads(dy.out("inspect", name))[0]["Id"]
    assert (
        dy.out(
            "update", "--memory", "64m", "--pids-limit", "42", "--cpus", "0.5", "--restart", "on-failure:2", name
        ).strip()
        == name
    )
    hc = json.loads(dy.out("inspect", name))[0]["HostConfig"]
    assert (hc["Memory"], hc["PidsLimit"], hc["NanoCpus"]) == (64 << 20, 42, 500_000_000)
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert _cgroup_file(cid, "memory/dockyard/ID/memory.limit_in_bytes", "memory.max") == str(64 << 20)
    assert _cgroup_file(cid, "pids/dockyard/ID/pids.max", "pids.max") == "42"
    bad = dy.cli("update", "--memory", "1m", name)
    assert bad.returncode == 1 and b"Minimum memory limit" in bad.stderr
    assert dy.cli("update", name).returncode == 1


def test_commit_then_run_the_new_image(dy):
    name = _run_bg(dy, script=f"echo committed > /marker; {LOOP}")
    _wait_for_path(dy, name, "/marker")
    repo = "committed-" + uuid.uuid4().hex[:8]
    image_id = dy.out("commit", "-m", "my message", "-a", "me", "-c", "ENV FOO=bar", name, f"{repo}:v1").strip()
    assert image_id.startswith("sha256:")
    try:
        assert dy.out("run", "--rm", f"{repo}:v1", "cat", "/marker") == "committed\n"
        assert "FOO=bar" in dy.out("run", "--rm", f"{repo}:v1", "env")
        image = json.loads(dy.out("inspect", f"{repo}:v1"))[0]
        assert image["Comment"] == "my message" and image["Author"] == "me"
        assert image["Config"]["Cmd"] == ["sh", "-c", f"echo committed > /marker; {LOOP}"]
        history = dy.out("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", f"{repo}:v1")
        assert history.splitlines()[0] == f"sh -c echo committed > /marker; {LOOP}|my message"
        assert json.loads(dy.out("inspect", name))[0]["State"]["Status"] == "running"  # thawed again
    finally:
        dy.cli("rmi", "-f", f"{repo}:v1")


def test_diff_prints_docker_lines(dy):
    name = _name()
    dy.out("run", "--name", name, "busybox", "sh", "-c", "mkdir /newdir && echo x > /newdir/f && rm /bin/ls")
    lines = dy.out("diff", name).splitlines()
    assert "A /newdir" in lines and "A /newdir/f" in lines and "D /bin/ls" in lines and "C /bin" in lines


def test_cp_both_ways_running_and_stopped(dy, tmp_path: Path):
    name = _run_bg(dy, script=f"mkdir -p /data/sub && echo inner > /data/sub/f && echo top > /data/t; {LOOP}")
    _wait_for_path(dy, name, "/data/t")
    dy.out("cp", f"{name}:/data/t", str(tmp_path / "t"))
    assert (tmp_path / "t").read_text() == "top\n"
    dy.out("cp", f"{name}:/data", str(tmp_path / "copy"))  # missing dest: the directory takes its name
    assert (tmp_path / "copy" / "sub" / "f").read_text() == "inner\n"
    (tmp_path / "into").mkdir()
    dy.out("cp", f"{name}:/data", str(tmp_path / "into"))  # existing dest: copied inside
    assert (tmp_path / "into" / "data" / "t").exists()
    (tmp_path / "contents").mkdir()
    dy.out("cp", f"{name}:/data/.", str(tmp_path / "contents"))  # "/.": the contents only
    assert sorted(os.listdir(tmp_path / "contents")) == ["sub", "t"]
    (tmp_path / "up.txt").write_text("uploaded")
    dy.out("cp", str(tmp_path / "up.txt"), f"{name}:/data/")
    dy.out("cp", str(tmp_path / "up.txt"), f"{name}:/data/renamed.txt")
    dy.out("stop", "-t", "0", name)
    dy.out("cp", str(tmp_path / "contents"), f"{name}:/fromhost")  # stopped container: mounted for us
    dy.out("start", name)
    listing = dy.out("exec", name, "ls", "/data", "/fromhost") if _has_exec(dy) else None
    if listing is not None:
        assert "renamed.txt" in listing and "up.txt" in listing and "sub" in listing
    out = dy.cli("cp", f"{name}:/fromhost/t", "-").stdout
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        assert tar.extractfile("t").read() == b"top\n"
    missing = dy.cli("cp", f"{name}:/nope", str(tmp_path / "x"))
    assert missing.returncode == 1 and b"Could not find the file /nope" in missing.stderr
    assert b"No such container" in dy.cli("cp", f"no-such-{uuid.uuid4().hex}:/x", str(tmp_path)).stderr


def _has_exec(dy) -> bool:
    return dy.cli("exec", "--help").returncode == 0


def test_cp_never_escapes_through_container_symlinks(dy, tmp_path: Path):
    marker = f"dockyard-escape-{uuid.uuid4().hex}"
    name = _run_bg(dy, script=f"ln -s / /tmp/rootlink && ln -s ../../../../../../tmp /tmp/uplink; {LOOP}")
    _wait_for_path(dy, name, "/tmp/uplink")
    (tmp_path / marker).write_text("x")
    dy.out("cp", str(tmp_path / marker), f"{name}:/tmp/uplink/")
    dy.out("cp", str(tmp_path / marker), f"{name}:/tmp/rootlink/")
    assert not os.path.exists(f"/tmp/{marker}") and not os.path.exists(f"/{marker}")
    hostile = io.BytesIO()
    with tarfile.open(fileobj=hostile, mode="w") as tar:
        info = tarfile.TarInfo(f"../../../../../../tmp/{marker}-tar")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    try:
        _api(dy).put_archive(name, "/tmp", hostile.getvalue())
    except APIError as exc:
        assert exc.status == 400
    assert not os.path.exists(f"/tmp/{marker}-tar")
    # reading through the links stays inside too: /tmp/uplink/.. is the container's /
    info, response = _api(dy).get_archive(name, "/tmp/uplink/")
    response.content()
    assert info["name"] == "uplink" or info["mode"] & (1 << 31)


def test_port_is_empty_without_networking(dy):
    name = _run_bg(dy)
    assert dy.out("port", name) == ""
    result = dy.cli("port", name, "80")
    assert result.returncode == 1 and b"No public port '80/tcp' published" in result.stderr


def test_container_and_image_prune_with_filters(dy):
    keep, drop = _name(), _name()
    dy.out("create", "--name", keep, "--label", "keep=yes", "busybox")
    dy.out("create", "--name", drop, "busybox")
    running = _run_bg(dy)
    out = dy.out("container", "prune", "-f", "--filter", "label!=keep")
    assert out.startswith("Deleted Containers:\n") and "Total reclaimed space:" in out
    names = dy.out("ps", "-a", "--format", "{{.Names}}").split()
    assert keep in names and running in names and drop not in names
    repo = "prune-" + uuid.uuid4().hex[:8]
    dy.out("commit", keep, f"{repo}:x")
    assert "Deleted Images" not in dy.out("image", "prune", "-f")  # tagged: not dangling
    out = dy.out("image", "prune", "-a", "-f", "--filter", f"until={10**10}")
    assert f"untagged: {repo}:x" in out
    assert "busybox:latest" in dy.out("images", "--format", "{{.Repository}}:{{.Tag}}")  # in use: kept


def test_system_df_and_verbose(dy):
    name = _run_bg(dy)
    table = dy.out("system", "df").splitlines()
    assert table[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [row.split()[0] for row in table[1:]] == ["Images", "Containers", "Local", "Build"]
    df = _api(dy).df()
    assert {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"} <= df.keys()
    assert any(c["Names"] == [f"/{name}"] and "SizeRw" in c for c in df["Containers"])
    verbose = dy.out("system", "df", "-v")
    assert "Images space usage:" in verbose and name in verbose


def test_inspect_by_id_prefix_and_type(dy):
    name = _run_bg(dy)
    cid = json.loads(dy.out("inspect", name))[0]["Id"]
    assert json.loads(dy.out("inspect", cid[:6]))[0]["Id"] == cid
    image_id = json.loads(dy.out("inspect", "--type", "image", "busybox"))[0]["Id"]
    assert json.loads(dy.out("inspect", image_id.removeprefix("sha256:")[:10]))[0]["Id"] == image_id
    missing = dy.cli("inspect", "--type", "container", "busybox")
    assert missing.returncode == 1 and b"No such container: busybox" in missing.stderr


def test_unknown_container_is_404(dy):
    api = _api(dy)
    ghost = "ghost-" + uuid.uuid4().hex
    for call in (
        lambda: api.top_container(ghost),
        lambda: api.update_container(ghost, {"Memory": 1 << 26}),
        lambda: api.commit(ghost),
        lambda: api.get_archive(ghost, "/"),
        lambda: api.pause_container(ghost),
    ):
        try:
            call()
        except APIError as exc:
            assert exc.status == 404, exc
        else:
            raise AssertionError("expected 404")
