"""Pure parts of the verbs: ps parsing, commit config merge, stats maths, cp path rules and confinement."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard.cli.container_ops import StatsEntry, plan_copy, split_cp_arg, split_dir_entry
from dockyard.daemon.archive import (
    container_abs_path,
    extract_tar,
    go_file_mode,
    path_stat,
    resolve_extraction_point,
    resolve_source,
    write_path_tar,
)
from dockyard.daemon.container_ops import merge_commit_config, parse_ps_output
from dockyard.errors import DockyardError, InvalidParameter, NotFound
from dockyard.image.layer import LayerError


def test_parse_ps_output_keeps_command_spaces_and_filters_pids() -> None:
    out = (
        "UID PID PPID C STIME TTY TIME CMD\n"
        "root 10 1 0 12:00 ? 00:00:00 sh -c echo hi\n"
        "root 11 10 0 12:00 ? 00:00:00 sleep 5\n"
    )
    top = parse_ps_output(out, {10})
    assert top["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert top["Processes"] == [["root", "10", "1", "0", "12:00", "?", "00:00:00", "sh -c echo hi"]]
    with pytest.raises(DockyardError, match="Couldn't find PID"):
        parse_ps_output("USER CMD\nroot x\n", {1})


def test_merge_commit_config_follows_docker() -> None:
    container = {
        "Cmd": ["sh"],
        "Env": ["PATH=/bin", "A=1"],
        "User": "nobody",
        "Labels": {"x": "1"},
        "ExposedPorts": {"80/tcp": {}},
        "Hostname": "abc",
        "Entrypoint": None,
    }
    merged = merge_commit_config({"Env": ["A=2"], "Labels": {"y": "2"}}, container)
    assert merged["Env"] == ["A=2", "PATH=/bin"]
    assert merged["Cmd"] == ["sh"] and merged["User"] == "nobody"
    assert merged["Labels"] == {"x": "1", "y": "2"}
    assert merged["ExposedPorts"] == {"80/tcp": {}}
    assert "Hostname" not in merged  # docker does not carry the container's hostname into the image
    assert merge_commit_config({"Entrypoint": ["/bin/true"]}, container).get("Cmd") is None


def test_stats_cpu_and_memory_like_docker_cli() -> None:
    sample = {
        "name": "/web",
        "id": "f" * 64,
        "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
        "memory_stats": {"usage": 1000, "limit": 4000, "stats": {"inactive_file": 200}},
        "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 5}, {"op": "write", "value": 7}]},
        "pids_stats": {"current": 3},
    }
    entry = StatsEntry.from_stats("web", sample)
    assert entry.cpu == pytest.approx(40.0)  # 200/1000 * 2 cpus * 100
    assert entry.memory == 800 and entry.memory_percent == pytest.approx(20.0)
    assert (entry.block_read, entry.block_write, entry.pids, entry.name) == (5, 7, 3, "web")


def test_cp_argument_and_path_rules() -> None:
    assert split_cp_arg("web:/etc") == ("web", "/etc")
    assert split_cp_arg("/abs:x") == ("", "/abs:x")
    assert split_cp_arg("./a:b") == ("", "./a:b")
    assert split_dir_entry("/etc/.") == ("/etc", ".")
    assert container_abs_path("etc/../tmp/.") == "/tmp/."
    assert container_abs_path("/tmp/") == "/tmp/"
    # into an existing directory: no rename
    assert plan_copy("/etc", True, "/out", True, True).rename_from is None
    # a directory onto a file, a file into a missing "dir/"
    with pytest.raises(Exception, match="cannot copy a directory"):
        plan_copy("/etc", True, "/out/file", True, False)
    with pytest.raises(Exception, match="must exist"):
        plan_copy("/etc/hostname", False, "/out/missing/", False, False)
    plan = plan_copy("/etc/.", True, "/out/new", False, False)
    assert (plan.directory, plan.rename_from, plan.rename_to) == ("/out", ".", "new")


def test_go_file_mode_bits() -> None:
    assert go_file_mode(stat.S_IFDIR | 0o755) == (1 << 31) | 0o755
    assert go_file_mode(stat.S_IFLNK | 0o777) == (1 << 27) | 0o777
    assert go_file_mode(stat.S_IFREG | 0o4755) == (1 << 23) | 0o755


@pytest.fixture
def hostile_root(tmp_path: Path) -> tuple[Path, Path]:
    """A container root whose symlinks point at the host (absolute and via ..), and a host dir beside it."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_text("host secret")
    (root / "etc" / "hostname").write_text("ctr\n")
    (root / "data").mkdir()
    os.symlink(str(outside), root / "abs")  # absolute: must mean <root>/tmp/.../outside
    os.symlink("../../outside", root / "data" / "up")  # climbs: must stop at the root
    return root, outside


def test_source_paths_stay_in_root(hostile_root: tuple[Path, Path]) -> None:
    root, _ = hostile_root
    with pytest.raises(NotFound, match="Could not find the file /abs/secret in container c"):
        path_stat(resolve_source(str(root), "/abs/secret"), "c")
    with pytest.raises(NotFound):
        path_stat(resolve_source(str(root), "/data/up/secret"), "c")
    link = path_stat(resolve_source(str(root), "/data/up"), "c")
    assert link["mode"] & (1 << 27) and link["linkTarget"] == "/outside"
    info = path_stat(resolve_source(str(root), "/etc/hostname"), "c")
    assert (info["name"], info["size"]) == ("hostname", 4)


def test_get_tar_names_like_docker(hostile_root: tuple[Path, Path]) -> None:
    root, _ = hostile_root

    def names(path: str) -> list[str]:
        out = io.BytesIO()
        write_path_tar(resolve_source(str(root), path), out)
        out.seek(0)
        return tarfile.open(fileobj=out).getnames()

    assert names("/etc") == ["etc", "etc/hostname"]
    assert names("/etc/.") == [".", "./hostname"]
    assert names("/etc/hostname") == ["hostname"]
    assert names("/data") == ["data", "data/up"]  # the link itself, not its target


def _tar(entries: list[tuple[str, bytes | None, str]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, link in entries:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))
    buf.seek(0)
    return buf


def test_put_is_confined(hostile_root: tuple[Path, Path]) -> None:
    root, outside = hostile_root
    with pytest.raises(LayerError):
        extract_tar(_tar([("../escape", b"x", "")]), resolve_extraction_point(str(root), "/etc", "c"))
    assert not (root / "escape").exists()
    # through the container's own symlinks: lands inside the root, never in `outside`
    extract_tar(_tar([("up/owned", b"x", "")]), resolve_extraction_point(str(root), "/data", "c"))
    assert not (outside / "owned").exists()
    assert (root / "data" / "outside" / "owned").read_bytes() == b"x"
    with pytest.raises(NotFound):  # /abs points at a host path, which is missing inside the root
        resolve_extraction_point(str(root), "/abs", "c")
    with pytest.raises(InvalidParameter, match="extraction point is not a directory"):
        resolve_extraction_point(str(root), "/etc/hostname", "c")
