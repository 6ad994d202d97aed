"""The snapshotter contract: read-only layers below, one writable snapshot per container.

Modelled on containerd's snapshotter: layers are committed, identified by their chain id
(sha256 per the OCI image spec); a container's snapshot is keyed by the container id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Protocol


@dataclass(frozen=True)
class Change:
    """One filesystem change of a snapshot against its parent, as `docker diff` reports it.

    kind: 0 modified, 1 added, 2 deleted (docker's ChangeType numbers). path is absolute
    inside the container ("/etc/passwd")."""

    kind: int
    path: str


class Snapshotter(Protocol):
    name: str

    # -- committed layers -------------------------------------------------
    def has_layer(self, chain_id: str) -> bool: ...

    def apply_layer(self, chain_id: str, parent: str | None, tar_stream: BinaryIO) -> int:
        """Unpack an uncompressed layer tar as a new committed layer on top of `parent`.

        Atomic: the layer becomes visible only when fully unpacked. Never writes outside
        the layer directory. Returns the unpacked size in bytes."""
        ...

    def remove_layer(self, chain_id: str) -> None: ...

    def layer_size(self, chain_id: str) -> int: ...

    # -- container snapshots ------------------------------------------------
    def prepare(self, key: str, parent: str | None) -> None:
        """Create the writable snapshot `key` on top of committed layer `parent`."""
        ...

    def mount(self, key: str, target: str, readonly: bool = False) -> None:
        """Mount the snapshot's merged view on `target` (an existing directory)."""
        ...

    def unmount(self, target: str) -> None: ...

    def changes(self, key: str) -> list[Change]:
        """What the snapshot changed against its parent (no mount needed)."""
        ...

    def write_diff(self, key: str, out: BinaryIO) -> None:
        """Write the snapshot's changes as an uncompressed layer tar with .wh. whiteouts."""
        ...

    def snapshot_size(self, key: str) -> int: ...

    def remove(self, key: str) -> None:
        """Delete the snapshot (it must be unmounted). Idempotent."""
        ...
