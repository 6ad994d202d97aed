"""OCI `linux.seccomp` -> a classic BPF program for SECCOMP_SET_MODE_FILTER, and its loader.

Layout of the program (all conditional jumps stay within their 8-bit range; long jumps are BPF_JA):
  load arch -> one check per supported architecture -> that arch's section, else kill the process;
  section: load nr -> binary search over syscall-number intervals -> a return, or a handler that
  tests the syscall's argument conditions (64-bit values as two 32-bit halves) in rule order.
Rules for one syscall: the conditional rules in profile order, then its first unconditional rule,
then the default action. Names unknown on an architecture are skipped, as libseccomp and runc do.
"""

from __future__ import annotations

import errno
import os
import struct
import sys
from collections import namedtuple

from dockyard.runtime import seccomp_profile

# typing/dataclasses cost every monitor (forked from the zygote) memory: types are for the checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# BPF opcodes (linux/filter.h, linux/bpf_common.h)
LD_W_ABS = 0x20
ALU_AND_K = 0x54
JMP_JA = 0x05
JMP_JEQ_K = 0x15
JMP_JGT_K = 0x25
JMP_JGE_K = 0x35
RET_K = 0x06
BPF_MAXINSNS = 4096

# struct seccomp_data offsets
OFFSET_NR = 0
OFFSET_ARCH = 4
OFFSET_ARGS = 16

# seccomp return values (linux/seccomp.h)
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000

AUDIT_ARCH = {
    "SCMP_ARCH_X86_64": 0xC000003E,
    "SCMP_ARCH_X86": 0x40000003,
    "SCMP_ARCH_AARCH64": 0xC00000B7,
    "SCMP_ARCH_ARM": 0x40000028,
}
NATIVE_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}
_THIRTY_TWO_BIT = {"SCMP_ARCH_X86", "SCMP_ARCH_ARM"}
X32_SYSCALL_BIT = 0x40000000
# A listed architecture we have no number table for (x32, arm on arm64): every syscall fails with
# ENOSYS. Debian kernels disable x32 anyway; an allow-all default must never leak to such an ABI.
RET_UNTRANSLATED_ARCH = RET_ERRNO | errno.ENOSYS

FILTER_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}
_SECCOMP_SET_MODE_FILTER = 1
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}


class SeccompError(ValueError):
    """The profile cannot be compiled (unknown action, operator, argument index...)."""


Insn = namedtuple("Insn", "code jt jf k")
Insn.__doc__ = "One `struct sock_filter`."


# --- assembler -----------------------------------------------------------------------------------


class _Label:
    __slots__ = ()


class _Asm:
    """Instructions with symbolic forward jump targets; `resolve` turns them into offsets."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[Any] = []

    @property
    def size(self) -> int:
        return sum(1 for item in self.items if not isinstance(item, _Label))

    def place(self, label: _Label) -> None:
        self.items.append(label)

    def load(self, offset: int) -> None:
        self.items.append((LD_W_ABS, None, None, offset))

    def and_(self, mask: int) -> None:
        self.items.append((ALU_AND_K, None, None, mask))

    def jump(self, code: int, k: int, jt: _Label, jf: _Label) -> None:
        self.items.append((code, jt, jf, k))

    def ja(self, target: _Label) -> None:
        self.items.append((JMP_JA, None, None, target))

    def ret(self, value: int) -> None:
        self.items.append((RET_K, None, None, value))

    def extend(self, other: _Asm) -> None:
        self.items.extend(other.items)

    def resolve(self) -> list[Insn]:
        positions: dict[_Label, int] = {}
        count = 0
        for item in self.items:
            if isinstance(item, _Label):
                positions[item] = count
            else:
                count += 1
        program = []
        for item in self.items:
            if isinstance(item, _Label):
                continue
            here = len(program) + 1
            code, jt, jf, k = item
            if code == JMP_JA:
                program.append(Insn(code, 0, 0, positions[k] - here))
            elif jt is not None:
                offsets = (positions[jt] - here, positions[jf] - here)
                if not all(0 <= off <= 255 for off in offsets):
                    raise SeccompError(f"internal error: conditional jump out of range {offsets}")
                program.append(Insn(code, offsets[0], offsets[1], k))
            else:
                program.append(Insn(code, 0, 0, k))
        return program


# --- actions and argument conditions --------------------------------------------------------------


def action_value(action: str, errno_ret: int | None) -> int:
    """The seccomp return value of an OCI action (ERRNO and TRACE carry errnoRet, EPERM if unset)."""
    data = (errno.EPERM if errno_ret is None else int(errno_ret)) & 0xFFFF
    values = {
        "SCMP_ACT_KILL": RET_KILL_THREAD,
        "SCMP_ACT_KILL_THREAD": RET_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS": RET_KILL_PROCESS,
        "SCMP_ACT_TRAP": RET_TRAP,
        "SCMP_ACT_ERRNO": RET_ERRNO | data,
        "SCMP_ACT_TRACE": RET_TRACE | data,
        "SCMP_ACT_LOG": RET_LOG,
        "SCMP_ACT_ALLOW": RET_ALLOW,
    }
    if action not in values:
        raise SeccompError(f"unsupported seccomp action {action!r}")
    return values[action]


_Cond = namedtuple("_Cond", "index op value value_two")


_OPS = {"SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_GT", "SCMP_CMP_GE", "SCMP_CMP_MASKED_EQ"}


def _condition(arg: dict[str, Any]) -> _Cond:
    cond = _Cond(int(arg.get("index", 0)), arg.get("op") or "", int(arg.get("value", 0)), int(arg.get("valueTwo", 0)))
    if not 0 <= cond.index <= 5:
        raise SeccompError(f"seccomp argument index {cond.index} out of range")
    if cond.op not in _OPS:
        raise SeccompError(f"unsupported seccomp operator {cond.op!r}")
    if not (0 <= cond.value < 1 << 64 and 0 <= cond.value_two < 1 << 64):
        raise SeccompError("seccomp argument values must be unsigned 64-bit integers")
    return cond


def _arg_offsets(index: int) -> tuple[int, int]:
    """(low word, high word) offsets of args[index] in struct seccomp_data."""
    base = OFFSET_ARGS + 8 * index
    return (base, base + 4) if sys.byteorder == "little" else (base + 4, base)


def _emit_word(asm: _Asm, offset: int, cond: _Cond, value: int, mask: int, yes: _Label, no: _Label) -> None:
    """One 32-bit comparison of a word of the argument."""
    asm.load(offset)
    if cond.op == "SCMP_CMP_MASKED_EQ":
        asm.and_(mask)
    code, swap = {
        "SCMP_CMP_EQ": (JMP_JEQ_K, False),
        "SCMP_CMP_MASKED_EQ": (JMP_JEQ_K, False),
        "SCMP_CMP_NE": (JMP_JEQ_K, True),
        "SCMP_CMP_GT": (JMP_JGT_K, False),
        "SCMP_CMP_GE": (JMP_JGE_K, False),
        "SCMP_CMP_LT": (JMP_JGE_K, True),
        "SCMP_CMP_LE": (JMP_JGT_K, True),
    }[cond.op]
    asm.jump(code, value, no if swap else yes, yes if swap else no)


def _emit_condition(asm: _Asm, cond: _Cond, wide: bool, yes: _Label, no: _Label) -> None:
    """Jump to `yes` when the argument satisfies `cond`, else to `no` (32-bit arches: low word only)."""
    low, high = _arg_offsets(cond.index)
    value_lo, value_hi = cond.value & 0xFFFFFFFF, cond.value >> 32
    two_lo, two_hi = cond.value_two & 0xFFFFFFFF, cond.value_two >> 32
    if not wide:
        if cond.op == "SCMP_CMP_MASKED_EQ":
            _emit_word(asm, low, cond, two_lo, value_lo, yes, no)
        else:
            _emit_word(asm, low, cond, value_lo, 0, yes, no)
        return
    low_word = _Label()
    if cond.op in ("SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_MASKED_EQ"):
        # Both halves equal; NE is the negation of EQ.
        unequal = yes if cond.op == "SCMP_CMP_NE" else no
        if cond.op == "SCMP_CMP_MASKED_EQ":
            _emit_word(asm, high, cond, two_hi, value_hi, low_word, unequal)
            asm.place(low_word)
            _emit_word(asm, low, cond, two_lo, value_lo, yes, no)
        else:
            asm.load(high)
            asm.jump(JMP_JEQ_K, value_hi, low_word, unequal)
            asm.place(low_word)
            _emit_word(asm, low, cond, value_lo, 0, yes, no)
        return
    # Ordered: decided by the high word unless equal, then by the low word. LT/LE negate GE/GT.
    negate = cond.op in ("SCMP_CMP_LT", "SCMP_CMP_LE")
    is_true, is_false = (no, yes) if negate else (yes, no)
    strict = cond.op in ("SCMP_CMP_GT", "SCMP_CMP_LE")
    high_not_greater = _Label()
    asm.load(high)
    asm.jump(JMP_JGT_K, value_hi, is_true, high_not_greater)
    asm.place(high_not_greater)
    asm.jump(JMP_JEQ_K, value_hi, low_word, is_false)
    asm.place(low_word)
    asm.load(low)
    asm.jump(JMP_JGT_K if strict else JMP_JGE_K, value_lo, is_true, is_false)


# --- rules per syscall number ---------------------------------------------------------------------


class _Syscall:
    """What one syscall number does: conditional rules first, then `fallback`."""

    __slots__ = ("conditional", "fallback")

    def __init__(self) -> None:
        self.conditional: list[tuple[tuple[_Cond, ...], int]] = []
        self.fallback: int | None = None


def _rules_by_number(config: dict[str, Any], table: dict[str, int]) -> dict[int, _Syscall]:
    by_number: dict[int, _Syscall] = {}
    for rule in config.get("syscalls") or ():
        value = action_value(rule.get("action") or "", rule.get("errnoRet"))
        conds = tuple(_condition(arg) for arg in rule.get("args") or ())
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        for name in names:
            number = table.get(name)
            if number is None:
                continue
            entry = by_number.setdefault(number, _Syscall())
            if conds:
                entry.conditional.append((conds, value))
            elif entry.fallback is None:
                entry.fallback = value
    return by_number


def _emit_handler(entry: _Syscall, default: int, wide: bool) -> _Asm:
    asm = _Asm()
    for conds, value in entry.conditional:
        next_rule = _Label()
        for cond in conds:
            holds = _Label()
            _emit_condition(asm, cond, wide, holds, next_rule)
            asm.place(holds)
        asm.ret(value)
        asm.place(next_rule)
    asm.ret(default if entry.fallback is None else entry.fallback)
    return asm


def _intervals(keys: dict[int, object], default: object) -> list[tuple[int, object]]:
    """[(first number, key)] covering 0..2**32-1, adjacent equal keys merged."""
    result: list[tuple[int, object]] = [(0, default)]
    for number in sorted(keys):
        for start, key in ((number, keys[number]), (number + 1, default)):
            if result[-1][0] == start:
                result[-1] = (start, key)
            else:
                result.append((start, key))
    merged: list[tuple[int, object]] = []
    for start, key in result:
        if start <= 0xFFFFFFFF and not (merged and merged[-1][1] == key):
            merged.append((start, key))
    return merged


def _emit_search(intervals: list[tuple[int, object]]) -> _Asm:
    """Binary search on the syscall number in A: a leaf returns (int key) or jumps to a handler."""
    asm = _Asm()
    if len(intervals) == 1:
        key = intervals[0][1]
        if isinstance(key, _Label):
            asm.ja(key)
        else:
            asm.ret(key)  # type: ignore[arg-type]
        return asm
    middle = len(intervals) // 2
    left, right = _emit_search(intervals[:middle]), _emit_search(intervals[middle:])
    left_label, right_label = _Label(), _Label()
    if left.size <= 255:
        asm.jump(JMP_JGE_K, intervals[middle][0], right_label, left_label)
    else:
        far = _Label()
        asm.jump(JMP_JGE_K, intervals[middle][0], far, left_label)
        asm.place(far)
        asm.ja(right_label)
    asm.place(left_label)
    asm.extend(left)
    asm.place(right_label)
    asm.extend(right)
    return asm


def _emit_section(arch: str, config: dict[str, Any], default: int, x32_action: int | None) -> _Asm:
    table = seccomp_profile.syscall_table(seccomp_profile.SCMP_ARCH_TABLES[arch])  # type: ignore[arg-type]
    wide = arch not in _THIRTY_TWO_BIT
    by_number = _rules_by_number(config, table)
    handlers = _Asm()
    keys: dict[int, object] = {}
    for number, entry in sorted(by_number.items()):
        if not entry.conditional:
            keys[number] = default if entry.fallback is None else entry.fallback
            continue
        label = _Label()
        handlers.place(label)
        handlers.extend(_emit_handler(entry, default, wide))
        keys[number] = label
    asm = _Asm()
    asm.load(OFFSET_NR)
    if x32_action is not None:
        native, x32 = _Label(), _Label()
        asm.jump(JMP_JGE_K, X32_SYSCALL_BIT, x32, native)
        asm.place(x32)
        asm.ret(x32_action)
        asm.place(native)
    asm.extend(_emit_search(_intervals(keys, default)))
    asm.extend(handlers)
    return asm


def compile_filter(config: dict[str, Any], machine: str | None = None) -> list[Insn]:
    """The BPF program for an OCI `linux.seccomp` object on `machine` (default: this host)."""
    machine = machine or os.uname().machine
    native = NATIVE_ARCH.get(machine)
    if native is None:
        raise SeccompError(f"seccomp is not supported on {machine}")
    if config.get("listenerPath") or config.get("defaultAction") == "SCMP_ACT_NOTIFY":
        raise SeccompError("seccomp notify (SCMP_ACT_NOTIFY, listenerPath) is not supported")
    default = action_value(config.get("defaultAction") or "", config.get("defaultErrnoRet"))
    listed = list(config.get("architectures") or [])
    for arch in listed:
        if arch not in seccomp_profile.SCMP_ARCH_TABLES:
            raise SeccompError(f"unsupported seccomp architecture {arch!r}")
    tables = seccomp_profile.SCMP_ARCH_TABLES
    with_table = [a for a in dict.fromkeys([native, *listed]) if tables[a] and a in AUDIT_ARCH]
    untranslated = [a for a in dict.fromkeys(listed) if a in AUDIT_ARCH and a not in with_table]
    x32_action = None
    if native == "SCMP_ARCH_X86_64":
        x32_action = RET_UNTRANSLATED_ARCH if "SCMP_ARCH_X32" in listed else RET_KILL_PROCESS

    program = _Asm()
    program.load(OFFSET_ARCH)
    sections = []
    for arch in with_table:
        entry, other = _Label(), _Label()
        program.jump(JMP_JEQ_K, AUDIT_ARCH[arch], entry, other)
        program.place(entry)
        section = _Label()
        program.ja(section)
        program.place(other)
        sections.append((section, _emit_section(arch, config, default, x32_action if arch == native else None)))
    for arch in untranslated:
        match, other = _Label(), _Label()
        program.jump(JMP_JEQ_K, AUDIT_ARCH[arch], match, other)
        program.place(match)
        program.ret(RET_UNTRANSLATED_ARCH)
        program.place(other)
    program.ret(RET_KILL_PROCESS)
    for label, section in sections:
        program.place(label)
        program.extend(section)
    result = program.resolve()
    if len(result) > BPF_MAXINSNS:
        raise SeccompError(f"seccomp program too long ({len(result)} instructions)")
    return result


def encode(program: list[Insn]) -> bytes:
    """The program as an array of `struct sock_filter` in host byte order."""
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


def filter_flags(config: dict[str, Any]) -> int:
    flags = 0
    for name in config.get("flags") or ():
        if name not in FILTER_FLAGS:
            raise SeccompError(f"unsupported seccomp flag {name!r}")
        flags |= FILTER_FLAGS[name]
    return flags


class CompiledFilter:
    """A filter ready to load in a forked child; `loaded` tells later steps it is already active."""

    __slots__ = ("flags", "loaded", "program")

    def __init__(self, program: bytes, flags: int = 0) -> None:
        self.program = program
        self.flags = flags
        self.loaded = False

    def load(self) -> None:
        load(self.program, self.flags)
        self.loaded = True


_compiled: dict[str, tuple[bytes, int]] = {}


def prepare(config: dict[str, Any] | None) -> CompiledFilter | None:
    """Compile a spec's linux.seccomp (None: no filter).

    Compiling takes a few milliseconds, so programs are cached per profile; the monitor zygote warms
    the cache with the default profile (`warm_default`), and every monitor forked from it inherits it."""
    if not config:
        return None
    import json

    key = json.dumps(config, sort_keys=True, separators=(",", ":"))
    if key not in _compiled:
        _compiled[key] = (encode(compile_filter(config)), filter_flags(config))
    program, flags = _compiled[key]
    return CompiledFilter(program, flags)


def warm_default() -> None:
    """Compile the default profile for docker's default capabilities ahead of time."""
    from dockyard.runtime.builtin.caps import DEFAULT_CAPABILITIES

    prepare(seccomp_profile.container_seccomp([], list(DEFAULT_CAPABILITIES)))


def load(program: bytes, flags: int = 0) -> None:
    """Install the filter on the calling thread: seccomp(2), or prctl(2) on kernels without it.
    Needs no_new_privs or CAP_SYS_ADMIN; raises OSError."""
    import ctypes

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.addressof(buffer))
    number = _SYS_SECCOMP.get(os.uname().machine)
    result = -1
    err = errno.ENOSYS
    if number is not None:
        mode_arg, flags_arg = ctypes.c_uint(_SECCOMP_SET_MODE_FILTER), ctypes.c_uint(flags)
        result = libc.syscall(ctypes.c_long(number), mode_arg, flags_arg, ctypes.byref(fprog))
        err = ctypes.get_errno() if result != 0 else 0
    if result != 0 and err == errno.ENOSYS and not flags:
        zero = ctypes.c_ulong(0)
        result = libc.prctl(_PR_SET_SECCOMP, ctypes.c_ulong(_SECCOMP_MODE_FILTER), ctypes.byref(fprog), zero, zero)
        err = ctypes.get_errno() if result != 0 else 0
    if result != 0:
        raise OSError(err, os.strerror(err))


def mode(pid: int | str = "self") -> int:
    """The `Seccomp:` field of /proc/<pid>/status (0 none, 1 strict, 2 filter)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Seccomp:"):
                return int(line.split()[1])
    return 0
