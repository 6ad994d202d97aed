"""Shape of the generated OCI config.json (nothing is run)."""

from __future__ import annotations

import resource

import pytest

from dockyard.errors import InvalidParameter
from dockyard.runtime.base import RuntimeFailure
from dockyard.runtime.builtin.caps import DEFAULT_CAPABILITIES, all_capabilities, cap_mask
from dockyard.runtime.spec import DEFAULT_PATH, build_spec
from tests.helpers.rootfs import GROUP, PASSWD

CID = "0123456789ab" + "c" * 52


@pytest.fixture
def rootfs(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(PASSWD)
    (tmp_path / "etc/group").write_text(GROUP)
    return str(tmp_path)


def make(rootfs, config=None, host=None, **kw):
    container = {"Id": CID, "Path": "sh", "Args": ["-c", "true"], "Config": config or {}, "HostConfig": host or {}}
    return build_spec(container, rootfs, cgroups_path=f"/dockyard/{CID}", **kw)


def test_defaults(rootfs):
    spec = make(rootfs, {"Env": ["A=1"]})
    assert spec["ociVersion"].startswith("1.1")  # runc 1.1 / crun 1.8 refuse newer
    assert spec["root"] == {"path": "rootfs", "readonly": False}
    assert spec["hostname"] == CID[:12]
    proc = spec["process"]
    assert proc["args"] == ["sh", "-c", "true"]
    assert proc["cwd"] == "/"
    assert proc["terminal"] is False
    assert proc["user"] == {"uid": 0, "gid": 0}
    assert proc["env"] == [f"PATH={DEFAULT_PATH}", f"HOSTNAME={CID[:12]}", "A=1"]
    assert proc["noNewPrivileges"] is False
    # docker's 1048576, or the daemon's own hard limit when it cannot raise it (no CAP_SYS_RESOURCE)
    nofile = min(1048576, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    assert {"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile} in proc["rlimits"]
    caps = proc["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == list(DEFAULT_CAPABILITIES)
    assert cap_mask(caps["effective"]) == 0xA80425FB  # docker's well-known CapEff
    linux = spec["linux"]
    assert [ns["type"] for ns in linux["namespaces"]] == ["pid", "network", "ipc", "uts", "mount"]
    assert linux["cgroupsPath"] == f"/dockyard/{CID}"
    assert "/proc/kcore" in linux["maskedPaths"] and "/proc/sys" in linux["readonlyPaths"]
    assert linux["resources"]["devices"][0] == {"allow": False, "access": "rwm"}


def test_mounts(rootfs):
    mounts = {m["destination"]: m for m in make(rootfs)["mounts"]}
    assert list(mounts)[:1] == ["/proc"]
    assert mounts["/proc"]["type"] == "proc"
    assert mounts["/dev"]["type"] == "tmpfs"
    assert {"newinstance", "ptmxmode=0666"} <= set(mounts["/dev/pts"]["options"])
    assert "size=67108864" in mounts["/dev/shm"]["options"]
    assert "ro" in mounts["/sys"]["options"] and "ro" in mounts["/sys/fs/cgroup"]["options"]
    assert mounts["/dev/mqueue"]["type"] == "mqueue"
    shm = {m["destination"]: m for m in make(rootfs, host={"ShmSize": 1 << 20})["mounts"]}["/dev/shm"]
    assert "size=1048576" in shm["options"]


def test_env_tty_and_path_override(rootfs):
    env = make(rootfs, {"Env": ["PATH=/x", "HOSTNAME=mine"], "Tty": True, "Hostname": "h"})["process"]["env"]
    assert env == ["HOSTNAME=mine", "TERM=xterm", "PATH=/x"]  # docker replaces in place, appends new


def test_user_working_dir_and_groups(rootfs):
    proc = make(rootfs, {"User": "app", "WorkingDir": "/srv"})["process"]
    assert proc["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10]}
    assert proc["cwd"] == "/srv"


def test_unknown_user(rootfs):
    with pytest.raises(RuntimeFailure) as info:
        make(rootfs, {"User": "ghost"})
    assert info.value.exit_code == 125
    assert info.value.message == "unable to find user ghost: no matching entries in passwd file"


def test_capabilities_add_drop_all(rootfs):
    caps = make(rootfs, host={"CapAdd": ["net_admin"], "CapDrop": ["CAP_CHOWN", "mknod"]})["process"]["capabilities"]
    assert "CAP_NET_ADMIN" in caps["bounding"]
    assert "CAP_CHOWN" not in caps["bounding"] and "CAP_MKNOD" not in caps["bounding"]
    only = make(rootfs, host={"CapDrop": ["ALL"], "CapAdd": ["KILL"]})["process"]["capabilities"]
    assert only["effective"] == ["CAP_KILL"]
    every = make(rootfs, host={"CapAdd": ["ALL"], "CapDrop": ["SYS_ADMIN"]})["process"]["capabilities"]
    assert set(every["bounding"]) == set(all_capabilities()) - {"CAP_SYS_ADMIN"}
    with pytest.raises(InvalidParameter, match="unknown capability"):
        make(rootfs, host={"CapAdd": ["BOGUS"]})


def test_privileged(rootfs):
    spec = make(rootfs, host={"Privileged": True})
    assert spec["process"]["capabilities"]["bounding"] == all_capabilities()
    assert spec["linux"]["maskedPaths"] == [] and spec["linux"]["readonlyPaths"] == []
    sys_mount = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert "rw" in sys_mount["options"]
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]


def test_resources(rootfs):
    host = {"Memory": 32 << 20, "NanoCpus": 1_500_000_000, "CpuShares": 512, "PidsLimit": 20,
            "MemoryReservation": 16 << 20, "CpusetCpus": "0", "OomKillDisable": True}  # fmt: skip
    res = make(rootfs, host=host)["linux"]["resources"]
    assert res["memory"] == {"limit": 32 << 20, "swap": 64 << 20, "reservation": 16 << 20, "disableOOMKiller": True}
    assert res["cpu"] == {"shares": 512, "period": 100000, "quota": 150000, "cpus": "0"}
    assert res["pids"] == {"limit": 20}
    explicit = make(rootfs, host={"Memory": 10, "MemorySwap": -1, "CpuQuota": 5000, "CpuPeriod": 10000})
    assert explicit["linux"]["resources"]["memory"]["swap"] == -1
    assert explicit["linux"]["resources"]["cpu"] == {"period": 10000, "quota": 5000}
    assert "memory" not in make(rootfs)["linux"]["resources"]


def test_security_readonly_ulimits_sysctls_netns(rootfs):
    host = {"ReadonlyRootfs": True, "SecurityOpt": ["no-new-privileges"], "Sysctls": {"net.ipv4.ip_forward": "1"},
            "Ulimits": [{"Name": "nproc", "Soft": 10, "Hard": 20}]}  # fmt: skip
    spec = make(rootfs, host=host, netns_path="/run/netns/x")
    assert spec["root"]["readonly"] is True
    assert spec["process"]["noNewPrivileges"] is True
    assert {"type": "RLIMIT_NPROC", "hard": 20, "soft": 10} in spec["process"]["rlimits"]
    assert spec["linux"]["sysctl"] == {"net.ipv4.ip_forward": "1"}
    assert {"type": "network", "path": "/run/netns/x"} in spec["linux"]["namespaces"]
    assert make(rootfs, host={"SecurityOpt": ["no-new-privileges:false"]})["process"]["noNewPrivileges"] is False
    with pytest.raises(InvalidParameter):
        make(rootfs, host={"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]})


def test_binds_and_tmpfs(rootfs):
    container = {"Id": CID, "Path": "true", "Config": {}, "HostConfig": {"Tmpfs": {"/run": "size=1m"}},
                 "Mounts": [{"Type": "bind", "Source": "/srv/data", "Destination": "/data", "RW": False}]}  # fmt: skip
    mounts = {m["destination"]: m for m in build_spec(container, rootfs, cgroups_path="/x")["mounts"]}
    assert mounts["/data"] == {"destination": "/data", "type": "bind", "source": "/srv/data",
                               "options": ["rbind", "ro", "rprivate"]}  # fmt: skip
    assert "size=1m" in mounts["/run"]["options"]


def _seccomp_names(spec):
    return {name for rule in spec["linux"]["seccomp"]["syscalls"] for name in rule["names"]}


def test_seccomp_default_profile_follows_capabilities(rootfs):
    seccomp = make(rootfs)["linux"]["seccomp"]
    assert seccomp["defaultAction"] == "SCMP_ACT_ERRNO" and seccomp["defaultErrnoRet"] == 1
    assert seccomp["architectures"][0] in ("SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64")
    assert {"read", "execve", "clone", "chroot"} <= _seccomp_names(make(rootfs))  # CAP_SYS_CHROOT is a default
    assert not {"mount", "unshare", "setns", "reboot", "kcmp"} & _seccomp_names(make(rootfs))
    admin = make(rootfs, host={"CapAdd": ["SYS_ADMIN"]})
    assert {"mount", "unshare", "setns"} <= _seccomp_names(admin)
    assert not any(rule["args"] for rule in admin["linux"]["seccomp"]["syscalls"] if "clone" in rule["names"])
    assert "chroot" not in _seccomp_names(make(rootfs, host={"CapDrop": ["SYS_CHROOT"]}))


def test_seccomp_security_opts(rootfs):
    assert "seccomp" not in make(rootfs, host={"Privileged": True})["linux"]
    assert "seccomp" not in make(rootfs, host={"SecurityOpt": ["seccomp=unconfined"]})["linux"]
    assert "seccomp" not in make(rootfs, host={"SecurityOpt": ["seccomp:unconfined"]})["linux"]
    custom = '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}'
    seccomp = make(rootfs, host={"SecurityOpt": ["no-new-privileges", f"seccomp={custom}"]})["linux"]["seccomp"]
    assert seccomp["defaultAction"] == "SCMP_ACT_ALLOW"
    assert seccomp["syscalls"] == [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": []}]
    with pytest.raises(InvalidParameter, match="Decoding seccomp profile failed"):
        make(rootfs, host={"SecurityOpt": ["seccomp={not json"]})


def test_init_runs_docker_init_first(rootfs, monkeypatch):
    spec = make(rootfs, {}, {"Init": True})
    assert spec["process"]["args"] == ["/sbin/docker-init", "--", "sh", "-c", "true"]
    init_mount = next(m for m in spec["mounts"] if m["destination"] == "/sbin/docker-init")
    assert init_mount["type"] == "bind" and "ro" in init_mount["options"] and init_mount["source"].startswith("/")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeFailure, match='exec: "docker-init": executable file not found in \\$PATH'):
        make(rootfs, {}, {"Init": True})


def test_shared_namespaces_and_shm(rootfs):
    spec = make(rootfs, {}, {}, namespaces={"pid": None, "uts": None, "ipc": "/proc/9/ns/ipc"}, shm_source="/x/shm")
    kinds = {n["type"]: n.get("path") for n in spec["linux"]["namespaces"]}
    assert "pid" not in kinds and "uts" not in kinds and kinds["ipc"] == "/proc/9/ns/ipc"
    assert "hostname" not in spec  # no UTS namespace of its own: nothing to set
    shm = next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")
    assert (shm["type"], shm["source"]) == ("bind", "/x/shm")


def test_group_add_and_devices(rootfs):
    spec = make(rootfs, {"User": "app"}, {"GroupAdd": ["wheel", "4242"], "Devices": [{"PathOnHost": "/dev/null",
                "PathInContainer": "/dev/mynull", "CgroupPermissions": "rw"}]})  # fmt: skip
    assert set(spec["process"]["user"]["additionalGids"]) >= {10, 4242}
    assert spec["linux"]["devices"] == [
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 0, "gid": 0}
    ]
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"} in spec["linux"]["resources"]["devices"]
    with pytest.raises(RuntimeFailure, match="unable to find group nosuch"):
        make(rootfs, {}, {"GroupAdd": ["nosuch"]})
    with pytest.raises(InvalidParameter, match='adding custom device "/dev/nope": no such file or directory'):
        make(rootfs, {}, {"Devices": [{"PathOnHost": "/dev/nope"}]})
    with pytest.raises(InvalidParameter, match="is not a device node"):
        make(rootfs, {}, {"Devices": [{"PathOnHost": "/etc/hostname"}]})


def test_privileged_gets_the_host_devices(rootfs):
    devices = {d["path"]: d for d in make(rootfs, {}, {"Privileged": True})["linux"]["devices"]}
    null = devices["/dev/null"]
    assert (null["type"], null["major"], null["minor"]) == ("c", 1, 3)
    assert "/dev/console" not in devices and not any(p.startswith("/dev/pts/") for p in devices)
    assert make(rootfs, {}, {})["linux"]["devices"] == []
