"""--pid/--ipc/--uts: validation with moby's wording and what each mode shares."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from dockyard.daemon.namespaces import shared_namespaces, validate_modes
from dockyard.errors import Conflict, InvalidParameter


def box(cid: str, running: bool = True, pid: int = 99, **host: str) -> SimpleNamespace:
    return SimpleNamespace(
        id=cid, running=running, state={"Pid": pid}, host_config=host, dir=Path(f"/var/lib/dockyard/containers/{cid}")
    )


def test_validation() -> None:
    validate_modes({}, {"PidMode": "host", "IpcMode": "container:db", "UTSMode": "host"})
    for host, message in [
        ({"PidMode": "bogus"}, "invalid PID mode: bogus"),
        ({"IpcMode": "container:"}, "invalid IPC mode: container:"),
        ({"UTSMode": "private"}, "invalid UTS mode: private"),
    ]:
        with pytest.raises(InvalidParameter, match=message):
            validate_modes({}, host)
    with pytest.raises(InvalidParameter, match="conflicting options: hostname and the UTS mode"):
        validate_modes({"Hostname": "x"}, {"UTSMode": "host"})


def test_what_each_mode_shares() -> None:
    donor = box("donor", IpcMode="shareable")
    private = box("private", IpcMode="private")
    lookup = {"donor": donor, "private": private, "stopped": box("stopped", running=False)}.__getitem__
    assert shared_namespaces(box("a"), lookup) == ({}, None)
    joined, shm = shared_namespaces(box("b", PidMode="container:donor", IpcMode="container:donor"), lookup)
    assert joined == {"pid": "/proc/99/ns/pid", "ipc": "/proc/99/ns/ipc"} and shm == str(donor.dir / "shm")
    hosted = box("c", PidMode="host", IpcMode="host", UTSMode="host", NetworkMode="host")
    joined, shm = shared_namespaces(hosted, lookup)
    assert joined == {"pid": None, "ipc": None, "uts": None, "network": None} and shm == "/dev/shm"
    assert shared_namespaces(donor, lookup) == ({}, str(donor.dir / "shm"))
    with pytest.raises(Conflict, match="non-shareable IPC"):
        shared_namespaces(box("d", IpcMode="container:private"), lookup)
    with pytest.raises(Conflict, match="cannot join PID of a non running container: stopped"):
        shared_namespaces(box("e", PidMode="container:stopped"), lookup)
