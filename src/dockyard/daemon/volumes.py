"""Volumes: named and anonymous volumes (local driver), and a container's mounts.

A volume is <root>/<name>/_data plus <root>/<name>/volume.json (labels, driver options, created).
A new volume is assembled in a hidden temp directory and renamed into place, so a crash leaves no
half-created volume. In-use tracking needs no counter on disk: every container record lists its
mounts, so the users of a volume are the containers whose `Mounts` name it, plus the creates in
flight (kept in memory until the container is removed). That stays true across daemon restarts.

At container create, `attach` turns HostConfig.Binds/Mounts/Tmpfs/VolumesFrom and the image's
VOLUME entries into the record's `Mounts` (docker's inspect shape), after validating all of it, so
bad input creates nothing. At the first start `populate` copies the image's content into new,
empty volumes, as docker does.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from dockyard.errors import Conflict, DockyardError, InvalidParameter, NotFound
from dockyard.util.fs import read_json, write_json
from dockyard.util.ids import new_id

ANONYMOUS_LABEL = "com.docker.volume.anonymous"
LOCAL_DRIVER = "local"
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_LOCAL_OPTS = {"type", "device", "o", "size"}
_PROPAGATIONS = {"shared", "rshared", "slave", "rslave", "private", "rprivate"}
_MODE_WORDS = {"rw", "ro", "z", "Z", "nocopy", "consistent", "cached", "delegated", *_PROPAGATIONS}
LIST_FILTERS = {"dangling", "name", "label", "driver"}
PRUNE_FILTERS = {"label", "label!", "all"}
META = "volume.json"
_OPTION_FIELDS = {"bind": "BindOptions", "volume": "VolumeOptions", "tmpfs": "TmpfsOptions"}


class VolumeNotFound(NotFound):
    """docker: `get foo: no such volume`."""

    def __init__(self, name: str) -> None:
        super().__init__(f"get {name}: no such volume")


def validate_name(name: str) -> None:
    """The local driver's name rule; anything else (a relative path) is refused with docker's hint."""
    if not _NAME_RE.match(name):
        raise InvalidParameter(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'
        )


def _mount_error(kind: str, message: str) -> InvalidParameter:
    return InvalidParameter(f'invalid mount config for type "{kind}": {message}')


def _clean_destination(kind: str, target: str) -> str:
    if not target:
        raise _mount_error(kind, "field Target must not be empty")
    if not target.startswith("/"):
        raise _mount_error(kind, f"invalid mount path: '{target}' mount path must be absolute")
    clean = os.path.normpath(target)
    if clean == "/":
        raise InvalidParameter("invalid specification: destination can't be '/'")
    return clean.replace("//", "/")


# ---------------------------------------------------------------------------------------- mount plans
class MountPlan:
    """One mount to set up: validated, not yet acted upon (no volume created, no directory made)."""

    __slots__ = ("create_source", "destination", "kind", "mode", "name", "nocopy", "propagation", "rw", "source")

    def __init__(
        self,
        kind: str,
        destination: str,
        *,
        source: str = "",
        name: str = "",
        rw: bool = True,
        mode: str = "",
        propagation: str = "",
        nocopy: bool = False,
        create_source: bool = False,
    ) -> None:
        self.kind = kind  # bind | volume | tmpfs
        self.destination = destination
        self.source = source
        self.name = name  # a volume's name; "" for a new anonymous volume
        self.rw = rw
        self.mode = mode
        self.propagation = propagation
        self.nocopy = nocopy
        self.create_source = create_source  # -v /host/dir:/x makes the host dir, as docker does


def parse_bind(spec: str) -> MountPlan:
    """docker's `-v` syntax: `/dest`, `name:/dest[:mode]`, `/host:/dest[:mode]`."""
    parts = spec.split(":")
    if len(parts) > 3 or not all(parts[:2]):
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    if len(parts) == 1:
        return MountPlan("volume", _clean_destination("volume", parts[0]))
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    words = [w for w in mode.split(",") if w]
    bad = [w for w in words if w not in _MODE_WORDS]
    if bad or sum(w in ("ro", "rw") for w in words) > 1 or sum(w in _PROPAGATIONS for w in words) > 1:
        raise InvalidParameter(f"invalid mode: {mode}")
    rw = "ro" not in words
    propagation = next((w for w in words if w in _PROPAGATIONS), "")
    if source.startswith("/"):
        if "nocopy" in words:
            raise InvalidParameter(f"invalid mode: {mode}")
        return MountPlan(
            "bind",
            _clean_destination("bind", target),
            source=os.path.normpath(source),
            rw=rw,
            mode=mode,
            propagation=propagation or "rprivate",
            create_source=True,
        )
    validate_name(source)
    return MountPlan(
        "volume",
        _clean_destination("volume", target),
        name=source,
        rw=rw,
        mode=mode or "z",
        nocopy="nocopy" in words,
    )


def parse_mount(m: dict[str, Any]) -> MountPlan:
    """One HostConfig.Mounts entry (`--mount`), validated as moby's validateMountConfig does."""
    kind = m.get("Type") or ""
    source = m.get("Source") or ""
    rw = not m.get("ReadOnly")
    if kind not in ("bind", "volume", "tmpfs"):
        raise _mount_error(kind, "mount type unknown")
    destination = _clean_destination(kind, m.get("Target") or "")
    for other, key in _OPTION_FIELDS.items():
        if other != kind and m.get(key):
            raise _mount_error(kind, f"field {key} must not be specified")
    if kind == "bind":
        if not source:
            raise _mount_error(kind, "field Source must not be empty")
        if not source.startswith("/"):
            raise _mount_error(kind, f"invalid mount path: '{source}' mount path must be absolute")
        if not os.path.exists(source):
            raise _mount_error(kind, f"bind source path does not exist: {source}")
        propagation = (m.get("BindOptions") or {}).get("Propagation") or "rprivate"
        if propagation not in _PROPAGATIONS:
            raise _mount_error(kind, f"invalid propagation mode: {propagation}")
        return MountPlan(kind, destination, source=os.path.normpath(source), rw=rw, propagation=propagation)
    if kind == "tmpfs":
        if source:
            raise _mount_error(kind, "field Source must not be specified")
        return MountPlan(kind, destination, rw=rw)
    options = m.get("VolumeOptions") or {}
    driver = ((options.get("DriverConfig") or {}).get("Name")) or LOCAL_DRIVER
    if driver != LOCAL_DRIVER:
        raise InvalidParameter(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
    if source:
        validate_name(source)
    return MountPlan(kind, destination, name=source, rw=rw, mode="z", nocopy=bool(options.get("NoCopy")))


def parse_volumes_from(spec: str) -> tuple[str, bool | None]:
    """`container[:ro|rw]` -> (container, forced RW or None to keep each mount's own)."""
    ref, _, mode = spec.partition(":")
    if not ref:
        raise InvalidParameter(f"invalid volumes-from specification: '{spec}'")
    if mode not in ("", "ro", "rw"):
        raise InvalidParameter(f"invalid mode: {mode}")
    return ref, None if not mode else mode == "rw"


def _plan_from_mount(mount: dict[str, Any], rw: bool | None) -> MountPlan:
    """A mount of another container, for --volumes-from."""
    return MountPlan(
        mount.get("Type") or "bind",
        mount["Destination"],
        source=mount.get("Source") or "",
        name=mount.get("Name") or "",
        rw=mount.get("RW", True) if rw is None else rw,
        mode=mount.get("Mode") or "",
        propagation=mount.get("Propagation") or "",
        nocopy=True,
    )


def plan_mounts(config: dict[str, Any], host_config: dict[str, Any], lookup: Callable[[str], Any]) -> list[MountPlan]:
    """All of a new container's mounts by destination, in docker's precedence: image VOLUMEs, then
    --volumes-from, then -v binds, then --mount (a destination given twice by the user is an error)."""
    by_dest: dict[str, MountPlan] = {}
    for spec in host_config.get("VolumesFrom") or ():
        ref, rw = parse_volumes_from(spec)
        try:
            source = lookup(ref)
        except NotFound as exc:  # a 404 from create would make clients pull the image: say 400
            raise InvalidParameter(exc.message) from None
        for mount in source.record.get("Mounts") or ():
            if mount.get("Type") in ("bind", "volume"):
                by_dest[mount["Destination"]] = _plan_from_mount(mount, rw)
    user_given: set[str] = set()
    user_plans = [parse_bind(b) for b in host_config.get("Binds") or ()]
    user_plans += [parse_mount(m) for m in host_config.get("Mounts") or ()]
    for plan in user_plans:
        if plan.destination in user_given:
            raise InvalidParameter(f"Duplicate mount point: {plan.destination}")
        user_given.add(plan.destination)
        by_dest[plan.destination] = plan
    tmpfs = {os.path.normpath(d) for d in host_config.get("Tmpfs") or {}}
    if tmpfs & user_given:
        raise InvalidParameter(f"Duplicate mount point: {sorted(tmpfs & user_given)[0]}")
    for dest in config.get("Volumes") or {}:
        clean = _clean_destination("volume", dest)
        if clean not in by_dest and clean not in tmpfs:
            by_dest[clean] = MountPlan("volume", clean)
    return list(by_dest.values())


def mount_record(plan: MountPlan, mountpoint: str) -> dict[str, Any]:
    """The record's Mounts entry in docker's inspect shape."""
    if plan.kind == "volume":
        return {
            "Type": "volume",
            "Name": plan.name,
            "Source": mountpoint,
            "Destination": plan.destination,
            "Driver": LOCAL_DRIVER,
            "Mode": plan.mode,
            "RW": plan.rw,
            "Propagation": "",
        }
    return {
        "Type": plan.kind,
        "Source": plan.source,
        "Destination": plan.destination,
        "Mode": plan.mode,
        "RW": plan.rw,
        "Propagation": plan.propagation,
    }


# ---------------------------------------------------------------------------------------- the service
class VolumeService:
    """Volume CRUD, in-use tracking and the container mount hooks (attach, populate, release)."""

    def __init__(self, root: Path, events: Any, containers: Any = None) -> None:
        self.root = root
        self.events = events
        self.containers = containers  # ContainerService: bound by the daemon after both exist
        self._lock = threading.RLock()
        self._inflight: dict[str, set[str]] = {}  # container id -> volume names it holds
        root.mkdir(parents=True, exist_ok=True, mode=0o701)
        for leftover in root.glob(".tmp-*"):  # a create that crashed half way
            shutil.rmtree(leftover, ignore_errors=True)

    # -- records -----------------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        return self.root / name

    def mountpoint(self, name: str) -> str:
        return str(self._dir(name) / "_data")

    def _meta(self, name: str) -> dict[str, Any] | None:
        if not _NAME_RE.match(name):
            return None
        return read_json(self._dir(name) / META)

    def _view(self, name: str, meta: dict[str, Any]) -> dict[str, Any]:
        """GET /volumes/{name}: docker's Volume object."""
        return {
            "CreatedAt": meta.get("CreatedAt", ""),
            "Driver": meta.get("Driver", LOCAL_DRIVER),
            "Labels": meta.get("Labels") or None,  # docker shows null, not {}, when there are none
            "Mountpoint": self.mountpoint(name),
            "Name": name,
            "Options": meta.get("Options") or None,
            "Scope": "local",
        }

    def _names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if _NAME_RE.match(p.name) and (p / META).exists())

    # -- CRUD --------------------------------------------------------------------------------------
    def create(
        self,
        name: str = "",
        driver: str = "",
        driver_opts: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST /volumes/create; an existing volume of that name is returned as is (docker's rule)."""
        driver = driver or LOCAL_DRIVER
        if driver != LOCAL_DRIVER:
            raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found')
        name = name or new_id()
        validate_name(name)
        for key in driver_opts or {}:
            if key not in _LOCAL_OPTS:
                raise InvalidParameter(f'create {name}: invalid option: "{key}"')
        if driver_opts:
            raise InvalidParameter(f"create {name}: local driver options (type, device, o) are not supported")
        with self._lock:
            meta = self._meta(name)
            if meta is not None:
                return self._view(name, meta)
            meta = self._write_new(name, labels, driver_opts)
        self.events.publish("volume", "create", name, {"driver": LOCAL_DRIVER})
        return self._view(name, meta)

    def _write_new(self, name: str, labels: dict[str, str] | None, options: dict[str, str] | None) -> dict[str, Any]:
        from dockyard.util.timefmt import rfc3339_nano

        meta = {
            "Name": name,
            "Driver": LOCAL_DRIVER,
            "Labels": labels,
            "Options": options,
            "CreatedAt": rfc3339_nano().split(".")[0] + "Z",
        }
        tmp = self.root / f".tmp-{new_id()[:16]}"
        try:
            tmp.mkdir(mode=0o701)
            (tmp / "_data").mkdir(mode=0o755)
            write_json(tmp / META, meta, 0o600)
            os.rename(tmp, self._dir(name))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return meta

    def inspect(self, name: str) -> dict[str, Any]:
        meta = self._meta(name)
        if meta is None:
            raise VolumeNotFound(name)
        return self._view(name, meta)

    def users(self, name: str) -> list[str]:
        """Ids of the containers using the volume (records on disk and creates in flight)."""
        found = {cid for cid, names in self._inflight.items() if name in names}
        for c in self.containers.all() if self.containers is not None else ():
            if any(m.get("Type") == "volume" and m.get("Name") == name for m in c.record.get("Mounts") or ()):
                found.add(c.id)
        return sorted(found)

    def remove(self, name: str, force: bool = False) -> None:
        """DELETE /volumes/{name}: 409 while a container uses it (even with force, as docker)."""
        with self._lock:
            if self._meta(name) is None:
                if force:
                    return
                raise VolumeNotFound(name)
            users = self.users(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{' '.join(users)}]")
            self._delete(name)
        self.events.publish("volume", "destroy", name, {"driver": LOCAL_DRIVER})

    def _delete(self, name: str) -> None:
        """Rename away first, so a crash mid-delete never leaves a volume with half its data."""
        doomed = self.root / f".tmp-{new_id()[:16]}"
        os.rename(self._dir(name), doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def list(self, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """GET /volumes with docker's filters (dangling, name, label, driver)."""
        filters = filters or {}
        for key in filters:
            if key not in LIST_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        dangling = None
        for value in filters.get("dangling", []):
            if value.lower() not in ("true", "false", "1", "0"):
                raise InvalidParameter(f"invalid filter 'dangling={value}'")
            dangling = value.lower() in ("true", "1")
        out = []
        for name in self._names():
            meta = self._meta(name)
            if meta is None or not self._matches(name, meta, filters, dangling):
                continue
            out.append(self._view(name, meta))
        return {"Volumes": out, "Warnings": None}

    def _matches(self, name: str, meta: dict[str, Any], filters: dict[str, list[str]], dangling: bool | None) -> bool:
        from dockyard.daemon.filters import labels_match

        if filters.get("name") and not any(v in name for v in filters["name"]):
            return False
        if filters.get("driver") and meta.get("Driver", LOCAL_DRIVER) not in filters["driver"]:
            return False
        if not labels_match(meta.get("Labels") or {}, filters):
            return False
        return dangling is None or dangling == (not self.users(name))

    def prune(self, filters: dict[str, list[str]] | None = None, api_version: str = "1.47") -> dict[str, Any]:
        """POST /volumes/prune: unused volumes; since API 1.42 only anonymous ones unless all=true."""
        from dockyard.daemon.filters import check_keys, labels_match

        filters = filters or {}
        check_keys(filters, PRUNE_FILTERS)
        all_values = [v.lower() for v in filters.get("all", [])]
        for value in all_values:
            if value not in ("true", "false", "1", "0"):
                raise InvalidParameter(f"invalid filter 'all={value}'")
        everything = any(v in ("true", "1") for v in all_values) or _older(api_version, "1.42")
        deleted: list[str] = []
        reclaimed = 0
        for name in self._names():
            with self._lock:
                meta = self._meta(name)
                labels = (meta or {}).get("Labels") or {}
                if meta is None or self.users(name) or not labels_match(labels, filters):
                    continue
                if not everything and ANONYMOUS_LABEL not in labels:
                    continue
                size = _tree_size(self.mountpoint(name))
                self._delete(name)
            deleted.append(name)
            reclaimed += size
            self.events.publish("volume", "destroy", name, {"driver": LOCAL_DRIVER})
        self.events.publish("volume", "prune", "", {"reclaimed": str(reclaimed)})
        return {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def disk_usage(self) -> list[dict[str, Any]]:
        """The Volumes section of GET /system/df (with UsageData)."""
        out = []
        for name in self._names():
            meta = self._meta(name)
            if meta is None:
                continue
            view = self._view(name, meta)
            view["UsageData"] = {"Size": _tree_size(self.mountpoint(name)), "RefCount": len(self.users(name))}
            out.append(view)
        return out

    # -- container hooks -----------------------------------------------------------------------------
    def attach(
        self, cid: str, config: dict[str, Any], host_config: dict[str, Any], lookup: Callable[[str], Any]
    ) -> list[dict[str, Any]]:
        """Resolve a new container's mounts into record entries, creating the volumes it needs and
        marking them in use. Everything is validated first; a failure part way undoes what it made."""
        plans = plan_mounts(config, host_config, lookup)
        records: list[dict[str, Any]] = []
        created: list[str] = []
        with self._lock:
            held = self._inflight.setdefault(cid, set())
            try:
                for plan in plans:
                    if plan.kind == "volume":
                        if not plan.name:
                            plan.name = new_id()
                            self._write_new(plan.name, {ANONYMOUS_LABEL: ""}, None)
                            created.append(plan.name)
                        elif self._meta(plan.name) is None:
                            self._write_new(plan.name, None, None)
                            created.append(plan.name)
                        held.add(plan.name)
                        records.append(mount_record(plan, self.mountpoint(plan.name)))
                    else:
                        records.append(mount_record(plan, ""))
                for plan in plans:
                    if plan.kind == "bind" and plan.create_source and not os.path.exists(plan.source):
                        os.makedirs(plan.source, 0o755, exist_ok=True)
            except BaseException:
                self._inflight.pop(cid, None)
                for name in created:
                    with contextlib.suppress(OSError):
                        self._delete(name)
                raise
        for name in created:
            self.events.publish("volume", "create", name, {"driver": LOCAL_DRIVER})
        return records

    def populate(self, mounts: Iterable[dict[str, Any]], rootfs: str, nocopy: Iterable[str] = ()) -> None:
        """Copy the image's content at each volume's destination into the volume when the volume is
        empty (docker's copy-up), with the directory's owner and mode."""
        from dockyard.runtime.user import resolve_in_root
        from dockyard.storage.vfs import copy_tree

        skip = set(nocopy)
        for m in mounts:
            if m.get("Type") != "volume" or m["Destination"] in skip:
                continue
            data = self.mountpoint(m["Name"])
            source = resolve_in_root(rootfs, m["Destination"])
            if not os.path.isdir(source) or os.path.islink(source) or not os.path.isdir(data) or os.listdir(data):
                continue
            try:
                copy_tree(source, data)
            except OSError as exc:
                raise DockyardError(f"copying image content into volume {m['Name']}: {exc}") from exc

    def release(self, cid: str, mounts: Iterable[dict[str, Any]], remove_anonymous: bool) -> None:
        """A container is gone: it no longer holds its volumes; with `rm -v`/--rm its anonymous
        volumes are removed when nobody else uses them."""
        with self._lock:
            self._inflight.pop(cid, None)
        if not remove_anonymous:
            return
        for m in mounts:
            name = m.get("Name") or ""
            if m.get("Type") != "volume" or not name:
                continue
            meta = self._meta(name)
            if meta is None or ANONYMOUS_LABEL not in (meta.get("Labels") or {}):
                continue
            try:
                self.remove(name)
            except DockyardError:
                continue  # shared through --volumes-from: kept, as docker does


def nocopy_destinations(host_config: dict[str, Any]) -> list[str]:
    """Destinations whose volume must not be filled from the image (`:nocopy`, volume-nocopy)."""
    out = []
    for spec in host_config.get("Binds") or ():
        parts = spec.split(":")
        if len(parts) == 3 and "nocopy" in parts[2].split(","):
            out.append(os.path.normpath(parts[1]))
    for m in host_config.get("Mounts") or ():
        if (m.get("VolumeOptions") or {}).get("NoCopy") and m.get("Target"):
            out.append(os.path.normpath(m["Target"]))
    return out


def _tree_size(path: str) -> int:
    from dockyard.image.layer import tree_size

    try:
        return tree_size(path)
    except OSError:
        return 0


def _older(version: str, than: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        try:
            return tuple(int(p) for p in v.split("."))
        except ValueError:
            return (0,)

    return parts(version) < parts(than)
