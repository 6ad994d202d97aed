"""Volumes without a daemon: name rules, -v/--mount parsing, the VolumeService, copy-up, spec mounts."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from dockyard.cli.run import parse_mount as cli_parse_mount
from dockyard.daemon.events import EventBus
from dockyard.daemon.volumes import (
    ANONYMOUS_LABEL,
    VolumeService,
    nocopy_destinations,
    parse_bind,
    parse_mount,
    plan_mounts,
    validate_name,
)
from dockyard.errors import Conflict, ContainerNotFound, InvalidParameter, NotFound
from dockyard.runtime.spec import build_spec


class FakeContainers:
    """The two things the volume service asks of the container service: all() and get()."""

    def __init__(self) -> None:
        self.items: dict[str, SimpleNamespace] = {}

    def all(self) -> list[SimpleNamespace]:
        return list(self.items.values())

    def get(self, ref: str) -> SimpleNamespace:
        if ref not in self.items:
            raise ContainerNotFound(ref)
        return self.items[ref]

    def add(self, cid: str, mounts: list[dict]) -> None:
        self.items[cid] = SimpleNamespace(id=cid, record={"Id": cid, "Mounts": mounts})


@pytest.fixture
def svc(tmp_path: Path) -> VolumeService:
    return VolumeService(tmp_path / "volumes", EventBus(), FakeContainers())


def _attach(svc: VolumeService, cid: str, host: dict, volumes: dict | None = None) -> list[dict]:
    mounts = svc.attach(cid, {"Volumes": volumes}, host, svc.containers.get)
    svc.containers.add(cid, mounts)
    return mounts


# ------------------------------------------------------------------------------------------ parsing
def test_name_with_slash_gives_dockers_message():
    with pytest.raises(InvalidParameter) as err:
        validate_name("a/b")
    assert err.value.message == (
        'create a/b: "a/b" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" '
        "are allowed. If you intended to pass a host directory, use absolute path"
    )
    for bad in ("x", "-x", ".x", "a b"):
        with pytest.raises(InvalidParameter):
            validate_name(bad)
    validate_name("my_vol-1.2")


def test_parse_bind_forms():
    anon = parse_bind("/data/")
    assert (anon.kind, anon.destination, anon.name) == ("volume", "/data", "")
    named = parse_bind("cache:/var/cache:ro")
    assert (named.kind, named.name, named.rw, named.mode) == ("volume", "cache", False, "ro")
    bind = parse_bind("/srv/x:/x:ro,z,rshared")
    assert (bind.kind, bind.source, bind.rw, bind.propagation, bind.create_source) == (
        "bind", "/srv/x", False, "rshared", True
    )  # fmt: skip
    assert parse_bind("v1:/d:nocopy").nocopy
    with pytest.raises(InvalidParameter, match="invalid mode: bogus"):
        parse_bind("v1:/d:bogus")
    with pytest.raises(InvalidParameter, match="invalid mode"):
        parse_bind("v1:/d:ro,rw")
    with pytest.raises(InvalidParameter, match="mount path must be absolute"):
        parse_bind("v1:relative")
    with pytest.raises(InvalidParameter, match="destination can't be '/'"):
        parse_bind("/srv:/")
    with pytest.raises(InvalidParameter, match="includes invalid characters"):
        parse_bind("a/b:/d")
    with pytest.raises(InvalidParameter, match="invalid volume specification"):
        parse_bind("a:b:c:d")


def test_parse_mount_validation(tmp_path: Path):
    missing = tmp_path / "nope"
    with pytest.raises(InvalidParameter) as err:
        parse_mount({"Type": "bind", "Source": str(missing), "Target": "/x"})
    assert err.value.message == f'invalid mount config for type "bind": bind source path does not exist: {missing}'
    with pytest.raises(InvalidParameter, match="field Source must not be specified"):
        parse_mount({"Type": "tmpfs", "Source": "x", "Target": "/t"})
    with pytest.raises(InvalidParameter, match="mount type unknown"):
        parse_mount({"Type": "npipe", "Target": "/t"})
    with pytest.raises(InvalidParameter, match="field VolumeOptions must not be specified"):
        parse_mount({"Type": "bind", "Source": str(tmp_path), "Target": "/x", "VolumeOptions": {"NoCopy": True}})
    with pytest.raises(InvalidParameter, match='plugin "nfs" not found'):
        parse_mount({"Type": "volume", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Name": "nfs"}}})
    plan = parse_mount({"Type": "bind", "Source": str(tmp_path), "Target": "/x", "ReadOnly": True})
    assert (plan.kind, plan.rw, plan.propagation, plan.create_source) == ("bind", False, "rprivate", False)


def test_cli_mount_flag():
    assert cli_parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770") == {
        "Type": "tmpfs",
        "Target": "/t",
        "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1770},
    }
    assert cli_parse_mount("src=v,target=/d,readonly,volume-nocopy,volume-label=a=b") == {
        "Type": "volume",
        "Source": "v",
        "Target": "/d",
        "ReadOnly": True,
        "VolumeOptions": {"NoCopy": True, "Labels": {"a": "b"}},
    }
    with pytest.raises(ValueError, match="target is required"):
        cli_parse_mount("type=bind,src=/x")
    with pytest.raises(ValueError, match="unexpected key 'colour'"):
        cli_parse_mount("colour=red,dst=/x")
    with pytest.raises(ValueError, match="cannot mix 'tmpfs-\\*' options with mount type 'bind'"):
        cli_parse_mount("type=bind,src=/x,dst=/y,tmpfs-size=1m")


# ------------------------------------------------------------------------------------------ service
def test_create_inspect_list_remove(svc: VolumeService):
    view = svc.create("data1", labels={"team": "a"})
    assert view["Name"] == "data1" and view["Driver"] == "local" and view["Scope"] == "local"
    assert view["Mountpoint"] == str(svc.root / "data1" / "_data") and os.path.isdir(view["Mountpoint"])
    assert view["Labels"] == {"team": "a"} and view["CreatedAt"].endswith("Z")
    assert svc.create("data1") == view  # an existing name returns the volume, as docker does
    anon = svc.create()
    assert len(anon["Name"]) == 64
    assert anon["Labels"] is None and anon["Options"] is None  # docker's null, not {}
    assert [v["Name"] for v in svc.list({"label": ["team=a"]})["Volumes"]] == ["data1"]
    assert [v["Name"] for v in svc.list({"name": ["ata"]})["Volumes"]] == ["data1"]
    assert svc.list({"driver": ["other"]})["Volumes"] == []
    with pytest.raises(InvalidParameter, match="invalid filter 'bogus'"):
        svc.list({"bogus": ["1"]})
    svc.remove("data1")
    assert not (svc.root / "data1").exists()
    with pytest.raises(NotFound, match="get data1: no such volume"):
        svc.inspect("data1")
    with pytest.raises(NotFound, match="get data1: no such volume"):
        svc.remove("data1")
    svc.remove("data1", force=True)


def test_bad_create_leaves_nothing(svc: VolumeService):
    with pytest.raises(InvalidParameter, match="includes invalid characters"):
        svc.create("a/b")
    with pytest.raises(NotFound, match="plugin"):
        svc.create("ok1", driver="nfs")
    with pytest.raises(InvalidParameter, match='invalid option: "colour"'):
        svc.create("ok1", driver_opts={"colour": "red"})
    assert list(svc.root.iterdir()) == []


def test_in_use_volume_cannot_be_removed_and_dangling_filter(svc: VolumeService):
    mounts = _attach(svc, "c1", {"Binds": ["shared:/data"]})
    assert mounts == [
        {
            "Type": "volume",
            "Name": "shared",
            "Source": svc.mountpoint("shared"),
            "Destination": "/data",
            "Driver": "local",
            "Mode": "z",
            "RW": True,
            "Propagation": "",
        }
    ]
    with pytest.raises(Conflict) as err:
        svc.remove("shared", force=True)
    assert err.value.message == "remove shared: volume is in use - [c1]"
    svc.create("idle1")
    assert [v["Name"] for v in svc.list({"dangling": ["true"]})["Volumes"]] == ["idle1"]
    assert [v["Name"] for v in svc.list({"dangling": ["false"]})["Volumes"]] == ["shared"]
    del svc.containers.items["c1"]
    svc.release("c1", mounts, remove_anonymous=True)  # named volumes survive rm -v
    svc.remove("shared")


def test_users_survive_a_restart_through_the_records(tmp_path: Path):
    """A new service (daemon restart) knows the users from the container records alone."""
    containers = FakeContainers()
    first = VolumeService(tmp_path / "v", EventBus(), containers)
    mounts = first.attach("c9", {}, {"Binds": ["keep1:/k"]}, containers.get)
    containers.add("c9", mounts)
    again = VolumeService(tmp_path / "v", EventBus(), containers)
    with pytest.raises(Conflict):
        again.remove("keep1")


def test_image_volumes_are_anonymous_and_removed_with_rm_v(svc: VolumeService):
    mounts = _attach(svc, "c1", {}, {"/data": {}, "/logs": {}})
    names = {m["Destination"]: m["Name"] for m in mounts}
    assert set(names) == {"/data", "/logs"}
    for name in names.values():
        assert svc.inspect(name)["Labels"] == {ANONYMOUS_LABEL: ""}
    del svc.containers.items["c1"]
    svc.release("c1", mounts, remove_anonymous=False)
    assert len(svc.list()["Volumes"]) == 2  # kept without -v
    mounts2 = _attach(svc, "c2", {}, {"/data": {}})
    del svc.containers.items["c2"]
    svc.release("c2", mounts2, remove_anonymous=True)
    assert {v["Name"] for v in svc.list()["Volumes"]} == set(names.values())


def test_precedence_duplicates_and_volumes_from(svc: VolumeService, tmp_path: Path):
    host_dir = tmp_path / "made-by-v"
    src = _attach(svc, "src", {"Binds": ["v1:/a", f"{host_dir}:/b:ro"]}, {"/img": {}})
    assert host_dir.is_dir()  # -v creates a missing host directory, as docker does
    plans = plan_mounts({"Volumes": {"/a": {}}}, {"VolumesFrom": ["src:ro"], "Binds": ["v2:/a"]}, svc.containers.get)
    by_dest = {p.destination: p for p in plans}
    assert by_dest["/a"].name == "v2" and by_dest["/a"].rw  # -v beats --volumes-from beats VOLUME
    assert by_dest["/b"].kind == "bind" and not by_dest["/b"].rw and by_dest["/img"].name
    with pytest.raises(InvalidParameter, match="Duplicate mount point: /x"):
        plan_mounts({}, {"Binds": ["v1:/x"], "Mounts": [{"Type": "volume", "Target": "/x/"}]}, svc.containers.get)
    with pytest.raises(InvalidParameter, match="No such container: ghost"):  # 400: a 404 makes clients pull
        plan_mounts({}, {"VolumesFrom": ["ghost"]}, svc.containers.get)
    anon_of_src = next(m["Name"] for m in src if m["Destination"] == "/img")
    mounts = _attach(svc, "dst", {"VolumesFrom": ["src"]})
    assert {m["Destination"] for m in mounts} == {"/a", "/b", "/img"}
    del svc.containers.items["src"]
    svc.release("src", src, remove_anonymous=True)
    assert svc.inspect(anon_of_src)  # still used by "dst": kept


def test_failed_attach_creates_nothing(svc: VolumeService, tmp_path: Path):
    host_dir = tmp_path / "should-not-exist"
    bad = {"Type": "bind", "Source": str(tmp_path / "missing"), "Target": "/m"}
    with pytest.raises(InvalidParameter, match="bind source path does not exist"):
        svc.attach("c1", {"Volumes": {"/img": {}}}, {"Binds": ["new1:/n", f"{host_dir}:/h"], "Mounts": [bad]}, str)
    assert svc.list()["Volumes"] == [] and not host_dir.exists()
    assert svc.users("new1") == []


def test_prune_anonymous_by_default_all_with_filter(svc: VolumeService):
    svc.create("named1", labels={"keep": "no"})
    anon = svc.create(labels={ANONYMOUS_LABEL: ""})["Name"]
    used = _attach(svc, "c1", {}, {"/d": {}})[0]["Name"]
    (Path(svc.mountpoint(anon)) / "f").write_bytes(b"x" * 100)
    report = svc.prune()
    assert report == {"VolumesDeleted": [anon], "SpaceReclaimed": 100}
    assert svc.prune({"all": ["true"], "label": ["keep=yes"]})["VolumesDeleted"] is None
    assert svc.prune({"all": ["true"]})["VolumesDeleted"] == ["named1"]
    assert [v["Name"] for v in svc.list()["Volumes"]] == [used]
    assert svc.prune(api_version="1.41")["VolumesDeleted"] is None  # in use: never pruned
    with pytest.raises(InvalidParameter):
        svc.prune({"dangling": ["true"]})


def test_disk_usage_reports_size_and_links(svc: VolumeService):
    _attach(svc, "c1", {"Binds": ["du1:/d"]})
    (Path(svc.mountpoint("du1")) / "f").write_bytes(b"y" * 10)
    (usage,) = svc.disk_usage()
    assert usage["Name"] == "du1" and usage["UsageData"] == {"Size": 10, "RefCount": 1}


# ------------------------------------------------------------------------------------------ copy-up
def test_populate_copies_image_content_into_empty_volumes_only(svc: VolumeService, tmp_path: Path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "data" / "sub").mkdir(parents=True)
    (rootfs / "data" / "sub" / "f").write_text("from image")
    os.chown(rootfs / "data", 1234, 5678)
    os.chmod(rootfs / "data", 0o750)
    (rootfs / "escape").symlink_to("/etc")  # must resolve inside the rootfs, never the host's /etc
    mounts = _attach(svc, "c1", {"Binds": ["fresh1:/data", "full1:/data2", "esc1:/escape"]})
    (Path(svc.mountpoint("full1")) / "mine").write_text("keep")
    (rootfs / "data2").mkdir()
    (rootfs / "data2" / "other").write_text("image")
    svc.populate(mounts, str(rootfs))
    fresh = Path(svc.mountpoint("fresh1"))
    assert (fresh / "sub" / "f").read_text() == "from image"
    st = fresh.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 5678, 0o750)
    assert os.listdir(svc.mountpoint("full1")) == ["mine"]
    assert os.listdir(svc.mountpoint("esc1")) == []


def test_nocopy_skips_copy_up(svc: VolumeService, tmp_path: Path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "data").mkdir(parents=True)
    (rootfs / "data" / "f").write_text("x")
    host = {"Binds": ["nc1:/data:nocopy"]}
    mounts = _attach(svc, "c1", host)
    svc.populate(mounts, str(rootfs), nocopy_destinations(host))
    assert os.listdir(svc.mountpoint("nc1")) == []


# ------------------------------------------------------------------------------------------ spec
def test_spec_mounts_binds_volumes_and_tmpfs(tmp_path: Path):
    (tmp_path / "etc").mkdir()
    record = {
        "Id": "c" * 64,
        "Path": "sh",
        "Args": [],
        "Config": {"Hostname": "h"},
        "HostConfig": {
            "Tmpfs": {"/data/tmp": "size=1m"},
            "Mounts": [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 4096, "Mode": 0o700}}],
        },
        "Mounts": [
            {"Type": "tmpfs", "Source": "", "Destination": "/t", "Mode": "", "RW": True, "Propagation": ""},
            {"Type": "volume", "Name": "v", "Source": "/vol/_data", "Destination": "/data", "RW": False},
            {"Type": "bind", "Source": "/srv", "Destination": "/srv", "RW": True, "Propagation": "rslave"},
        ],
    }
    mounts = build_spec(record, str(tmp_path), cgroups_path="/x")["mounts"]
    user = [m for m in mounts if m["destination"] in ("/t", "/data", "/srv", "/data/tmp")]
    assert [m["destination"] for m in user][-1] == "/data/tmp"  # parents first
    by_dest = {m["destination"]: m for m in user}
    assert by_dest["/t"]["type"] == "tmpfs" and {"size=4096", "mode=700", "noexec"} <= set(by_dest["/t"]["options"])
    assert by_dest["/data"]["options"] == ["rbind", "ro", "rprivate"]
    assert by_dest["/srv"]["options"] == ["rbind", "rw", "rslave"]
    assert "size=1m" in by_dest["/data/tmp"]["options"]
