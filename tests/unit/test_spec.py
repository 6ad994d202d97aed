"""Shape of the generated OCI config.json (nothing is run)."""

from __future__ import annotations

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
    assert spec["ociVersion"].startswith("1.2")
    assert spec["root"] == {"path": "rootfs", "readonly": False}
    assert spec["hostname"] == CID[:12]
    proc = spec["process"]
    assert proc["args"] == ["sh", "-c", "true"]
    assert proc["cwd"] == "/"
    assert proc["terminal"] is False
    assert proc["user"] == {"uid": 0, "gid": 0}
    assert proc["env"] == [f"PATH={DEFAULT_PATH}", f"HOSTNAME={CID[:12]}", "A=1"]
    assert proc["noNewPrivileges"] is False
    assert {"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576} in proc["rlimits"]
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
