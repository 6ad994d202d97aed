"""Linux capabilities: the name table and applying an OCI `process.capabilities` object.

The table is shared with the spec generator (docker's defaults, `--cap-add ALL`).
"""

from __future__ import annotations

# Index = capability number (include/uapi/linux/capability.h).
CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
CAP_NUMBERS = {name: number for number, name in enumerate(CAPABILITIES)}

# moby oci/caps/defaults.go, in docker's order.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)  # fmt: skip


def kernel_last_cap() -> int:
    """Highest capability number of the running kernel (bounded by the table)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return min(int(f.read()), len(CAPABILITIES) - 1)
    except OSError:
        return len(CAPABILITIES) - 1


def all_capabilities() -> list[str]:
    """Every capability the kernel supports (docker's GetAllCapabilities) that the daemon itself
    still holds in its bounding set: no runtime can grant a container more, so in a sandbox that
    lacks some (CAP_SYS_RESOURCE here), --privileged gets all the others instead of failing."""
    bounding = _own_bounding_set()
    return [c for i, c in enumerate(CAPABILITIES[: kernel_last_cap() + 1]) if bounding >> i & 1]


def _own_bounding_set() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return -1


def cap_mask(names: list[str] | None) -> int:
    """Bit mask of the named capabilities; names unknown to the table are ignored like runc warns."""
    mask = 0
    for name in names or ():
        number = CAP_NUMBERS.get(name)
        if number is not None:
            mask |= 1 << number
    return mask


def apply_bounding(capabilities: dict) -> None:
    """Drop from the bounding set everything not listed (needs CAP_SETPCAP: do it before setuid)."""
    from dockyard.runtime.builtin import linux

    keep = cap_mask(capabilities.get("bounding"))
    for number in range(kernel_last_cap() + 1):
        if not keep & (1 << number):
            linux.prctl(linux.PR_CAPBSET_DROP, number)


def apply_process_caps(capabilities: dict) -> None:
    """Set effective/permitted/inheritable, then the ambient set (after the uid switch)."""
    from dockyard.runtime.builtin import linux

    linux.capset(
        cap_mask(capabilities.get("effective")),
        cap_mask(capabilities.get("permitted")),
        cap_mask(capabilities.get("inheritable")),
    )
    linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL)
    for name in capabilities.get("ambient") or ():
        if name in CAP_NUMBERS:
            linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, CAP_NUMBERS[name])
