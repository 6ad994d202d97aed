"""seccomp: the BPF compiler (instruction by instruction, and against a reference evaluator run on a
small BPF interpreter), docker's default profile, and real containers under the builtin runtime,
runc and crun (as root)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import shutil
import struct
import subprocess
import uuid
from pathlib import Path

import pytest

from dockyard.runtime import seccomp, seccomp_profile
from dockyard.runtime.base import Stdio
from dockyard.runtime.builtin import linux
from dockyard.runtime.builtin.caps import CAP_NUMBERS, DEFAULT_CAPABILITIES, all_capabilities
from dockyard.runtime.builtin.runtime import BuiltinRuntime
from dockyard.runtime.cgroups import v1_mountpoints
from dockyard.runtime.seccomp import (
    ALU_AND_K,
    JMP_JA,
    JMP_JEQ_K,
    JMP_JGE_K,
    JMP_JGT_K,
    LD_W_ABS,
    RET_ALLOW,
    RET_ERRNO,
    RET_KILL_PROCESS,
    RET_LOG,
    RET_TRAP,
    Insn,
)  # fmt: skip
from dockyard.runtime.spec import build_spec
from dockyard.util.fs import write_json
from tests.helpers.rootfs import make_busybox_rootfs

AUDIT_X86_64, AUDIT_I386, AUDIT_AARCH64, AUDIT_ARM = 0xC000003E, 0x40000003, 0xC00000B7, 0x40000028
CLONE_NEWUSER, SIGCHLD = 0x10000000, 17
X86 = seccomp_profile.syscall_table("x86_64")
I386 = seccomp_profile.syscall_table("x86")
ARM64 = seccomp_profile.syscall_table("aarch64")


# --- a classic BPF interpreter (the subset seccomp programs use) ---------------------------------------


def run_bpf(program: list[Insn], nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    """What the kernel would return for this syscall; checks that every jump stays in the program."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    acc, pc = 0, 0
    while True:
        assert 0 <= pc < len(program), "jumped out of the program"
        code, jt, jf, k = program[pc]
        pc += 1
        if code == LD_W_ABS:
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == ALU_AND_K:
            acc &= k
        elif code == JMP_JA:
            pc += k
        elif code in (JMP_JEQ_K, JMP_JGT_K, JMP_JGE_K):
            taken = {JMP_JEQ_K: acc == k, JMP_JGT_K: acc > k, JMP_JGE_K: acc >= k}[code]
            pc += jt if taken else jf
        elif code == seccomp.RET_K:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def x86_64(config: dict) -> list[Insn]:
    return seccomp.compile_filter(config, machine="x86_64")


def default_spec(caps: list[str], machine: str = "x86_64") -> dict:
    return seccomp_profile.to_spec(seccomp_profile.DEFAULT_PROFILE, caps, machine=machine, kernel=(6, 1))


EPERM = RET_ERRNO | errno.EPERM


# --- compiler output, instruction by instruction ----------------------------------------------------


def test_allow_list_program_exactly() -> None:
    program = x86_64({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["read", "write", "no_such_syscall"], "action": "SCMP_ACT_ALLOW"}],
    })  # fmt: skip
    assert program == [
        Insn(LD_W_ABS, 0, 0, 4),  # arch
        Insn(JMP_JEQ_K, 0, 1, AUDIT_X86_64),
        Insn(JMP_JA, 0, 0, 1),  # -> x86_64 section
        Insn(seccomp.RET_K, 0, 0, RET_KILL_PROCESS),  # an architecture not listed
        Insn(LD_W_ABS, 0, 0, 0),  # nr
        Insn(JMP_JGE_K, 0, 1, 0x40000000),  # x32 ABI, not listed: kill
        Insn(seccomp.RET_K, 0, 0, RET_KILL_PROCESS),
        Insn(JMP_JGE_K, 1, 0, 2),  # read=0 and write=1 form one interval
        Insn(seccomp.RET_K, 0, 0, RET_ALLOW),
        Insn(seccomp.RET_K, 0, 0, EPERM),
    ]


def test_argument_condition_program_exactly() -> None:
    program = x86_64({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EACCES,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}],
    })  # fmt: skip
    deny = RET_ERRNO | errno.EACCES
    assert program[4:] == [
        Insn(LD_W_ABS, 0, 0, 0),
        Insn(JMP_JGE_K, 0, 1, 0x40000000),
        Insn(seccomp.RET_K, 0, 0, RET_ERRNO | errno.ENOSYS),  # x32 listed but untranslated
        Insn(JMP_JGE_K, 1, 0, X86["personality"]),
        Insn(seccomp.RET_K, 0, 0, deny),
        Insn(JMP_JGE_K, 1, 0, X86["personality"] + 1),
        Insn(JMP_JA, 0, 0, 1),  # -> the handler
        Insn(seccomp.RET_K, 0, 0, deny),
        Insn(LD_W_ABS, 0, 0, 20),  # args[0] high word
        Insn(JMP_JEQ_K, 0, 3, 0),
        Insn(LD_W_ABS, 0, 0, 16),  # args[0] low word
        Insn(JMP_JEQ_K, 0, 1, 8),
        Insn(seccomp.RET_K, 0, 0, RET_ALLOW),
        Insn(seccomp.RET_K, 0, 0, deny),
    ]


def test_encoding_and_actions() -> None:
    assert seccomp.encode([Insn(0x20, 1, 2, 4)]) == struct.pack("=HBBI", 0x20, 1, 2, 4)
    assert seccomp.action_value("SCMP_ACT_ERRNO", 38) == RET_ERRNO | 38
    assert seccomp.action_value("SCMP_ACT_KILL", None) == 0
    assert seccomp.action_value("SCMP_ACT_TRAP", None) == RET_TRAP
    assert seccomp.action_value("SCMP_ACT_LOG", None) == RET_LOG
    assert seccomp.filter_flags({"flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}) == 6
    bad = [
        {"defaultAction": "SCMP_ACT_NOTIFY"},
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_BOGUS"}]},
        {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_PPC"]},
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                                          "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                                          "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]},
    ]  # fmt: skip
    for config in bad:
        with pytest.raises(seccomp.SeccompError):
            x86_64(config)


# --- the compiler against a reference evaluator -------------------------------------------------------

OPS = ["SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_GT", "SCMP_CMP_GE", "SCMP_CMP_MASKED_EQ"]


def holds(op: str, arg: int, value: int, value_two: int) -> bool:
    return {
        "SCMP_CMP_EQ": arg == value, "SCMP_CMP_NE": arg != value, "SCMP_CMP_LT": arg < value,
        "SCMP_CMP_LE": arg <= value, "SCMP_CMP_GT": arg > value, "SCMP_CMP_GE": arg >= value,
        "SCMP_CMP_MASKED_EQ": arg & value == value_two,
    }[op]  # fmt: skip


def reference(config: dict, table: dict[str, int], nr: int, args: tuple[int, ...]) -> int:
    """OCI semantics spelled out: conditional rules in order, then the first unconditional one."""
    default = seccomp.action_value(config["defaultAction"], config.get("defaultErrnoRet"))
    unconditional = None
    for rule in config["syscalls"]:
        if not any(table.get(name) == nr for name in rule["names"]):
            continue
        value = seccomp.action_value(rule["action"], rule.get("errnoRet"))
        if not rule.get("args"):
            unconditional = value if unconditional is None else unconditional
        elif all(holds(a["op"], args[a["index"]], a["value"], a.get("valueTwo", 0)) for a in rule["args"]):
            return value
    return default if unconditional is None else unconditional


def _interesting(rng: random.Random) -> int:
    return rng.choice([0, 1, 8, 40, 0xFFFFFFFF, 1 << 32, (1 << 32) + 8, 0xFFFFFFFF_FFFFFFFF, rng.getrandbits(64)])


def random_profile(rng: random.Random) -> dict:
    names = rng.sample(sorted(X86), 60)
    rules = []
    for i in range(0, 60, 3):
        rule = {"names": names[i : i + 3], "action": rng.choice(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_LOG"])}
        if rule["action"] == "SCMP_ACT_ERRNO":
            rule["errnoRet"] = rng.randrange(1, 100)
        if rng.random() < 0.5:
            rule["args"] = [
                {"index": rng.randrange(3), "op": rng.choice(OPS), "value": _interesting(rng),
                 "valueTwo": _interesting(rng)}
                for _ in range(rng.randrange(1, 3))
            ]  # fmt: skip
        rules.append(rule)
    rules.append({"names": names[:5], "action": "SCMP_ACT_TRAP"})  # later unconditional rules never win
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 7, "syscalls": rules}


def test_compiler_matches_reference_evaluator() -> None:
    rng = random.Random(1234)
    for _ in range(15):
        config = random_profile(rng)
        program = x86_64(config)
        numbers = sorted({X86[n] for rule in config["syscalls"] for n in rule["names"]})
        for nr in [*numbers, *(n + 1 for n in numbers), 0, 999, 0x3FFFFFFF]:
            for _ in range(6):
                args = tuple(_interesting(rng) for _ in range(3))
                assert run_bpf(program, nr, AUDIT_X86_64, args) == reference(config, X86, nr, args)


def test_32_bit_arch_compares_the_low_word_only() -> None:
    config = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}]}],
    }  # fmt: skip
    program = x86_64(config)
    assert run_bpf(program, I386["personality"], AUDIT_I386, (0xFFFFFFFF,)) == RET_ALLOW
    assert run_bpf(program, X86["personality"], AUDIT_X86_64, (0xFFFFFFFF,)) == RET_ALLOW
    assert run_bpf(program, X86["personality"], AUDIT_X86_64, (0xFFFFFFFF_FFFFFFFF,)) == EPERM
    assert run_bpf(program, I386["read"], AUDIT_I386) == EPERM


def test_long_programs_use_far_jumps() -> None:
    every_other = [name for name, nr in X86.items() if nr % 2 == 0]
    program = x86_64({"defaultAction": "SCMP_ACT_KILL_PROCESS",
                      "syscalls": [{"names": every_other, "action": "SCMP_ACT_ALLOW"}]})  # fmt: skip
    assert any(insn.code == JMP_JA for insn in program[4:])
    assert len(program) < seccomp.BPF_MAXINSNS
    for nr in range(0, 500):
        expected = RET_ALLOW if nr % 2 == 0 and nr in X86.values() else RET_KILL_PROCESS
        assert run_bpf(program, nr, AUDIT_X86_64) == expected


# --- docker's default profile ---------------------------------------------------------------------------


def test_default_profile_policy_on_x86_64() -> None:
    program = x86_64(default_spec(list(DEFAULT_CAPABILITIES)))
    assert len(program) < seccomp.BPF_MAXINSNS

    def call(name: str, *args: int, arch: int = AUDIT_X86_64, table: dict = X86) -> int:
        return run_bpf(program, table[name], arch, args)

    for name in ("read", "execve", "openat", "futex", "rt_sigreturn", "arch_prctl", "chroot", "fchmodat2"):
        assert call(name) == RET_ALLOW, name
    for name in ("mount", "unshare", "setns", "reboot", "kexec_load", "init_module", "bpf", "keyctl", "add_key"):
        assert call(name) == EPERM, name
    assert call("clone", SIGCHLD) == RET_ALLOW
    assert call("clone", SIGCHLD | CLONE_NEWUSER) == EPERM
    assert call("clone3") == RET_ERRNO | errno.ENOSYS  # libc falls back to clone
    assert call("socket", 2) == RET_ALLOW and call("socket", 40) == EPERM  # AF_VSOCK
    for value in seccomp_profile.PERSONALITY_VALUES:
        assert call("personality", value) == RET_ALLOW
    assert call("personality", 0x0400000) == EPERM
    assert call("socketcall", arch=AUDIT_I386, table=I386) == RET_ALLOW
    assert call("clone", SIGCHLD | CLONE_NEWUSER, arch=AUDIT_I386, table=I386) == EPERM
    assert call("mount", arch=AUDIT_I386, table=I386) == EPERM
    assert run_bpf(program, 0x40000000, AUDIT_X86_64) == RET_ERRNO | errno.ENOSYS  # x32
    assert run_bpf(program, 0, AUDIT_ARM) == RET_KILL_PROCESS


def test_default_profile_with_all_capabilities() -> None:
    program = x86_64(default_spec(all_capabilities()))
    for name in ("mount", "unshare", "setns", "reboot", "bpf", "ptrace", "clone3"):
        assert run_bpf(program, X86[name], AUDIT_X86_64) == RET_ALLOW, name
    assert run_bpf(program, X86["clone"], AUDIT_X86_64, (CLONE_NEWUSER,)) == RET_ALLOW


def test_default_profile_on_aarch64() -> None:
    spec = default_spec(list(DEFAULT_CAPABILITIES), machine="aarch64")
    assert spec["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    names = {n for rule in spec["syscalls"] for n in rule["names"]}
    assert "cacheflush" in names and "arch_prctl" not in names
    program = seccomp.compile_filter(spec, machine="aarch64")
    assert run_bpf(program, ARM64["read"], AUDIT_AARCH64) == RET_ALLOW
    assert run_bpf(program, ARM64["unshare"], AUDIT_AARCH64) == EPERM
    assert run_bpf(program, ARM64["clone"], AUDIT_AARCH64, (CLONE_NEWUSER,)) == EPERM
    assert run_bpf(program, 3, AUDIT_ARM) == RET_ERRNO | errno.ENOSYS
    assert run_bpf(program, 0, AUDIT_X86_64) == RET_KILL_PROCESS


def test_profile_filtering_like_moby() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"name": "a", "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "7.0"}},
            {"names": ["b"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.0"}},
            {"names": ["c"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
            {"names": ["d"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_BPF"]}},
            {"names": ["e"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
        ],
    }
    spec = seccomp_profile.to_spec(profile, ["CAP_SYS_ADMIN"], machine="x86_64", kernel=(6, 1))
    assert spec["syscalls"] == [{"names": ["e"], "action": "SCMP_ACT_ERRNO", "args": [], "errnoRet": 5}]
    assert spec["architectures"] == []
    with pytest.raises(seccomp_profile.ProfileError):
        seccomp_profile.to_spec({**profile, "architectures": ["SCMP_ARCH_X86_64"], "archMap": [{}]}, [])
    assert seccomp_profile.kernel_version("6.18.44-fc-v657") == (6, 18)


@pytest.mark.parametrize(("arch", "header"), [
    ("x86_64", "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    ("x86", "/usr/include/x86_64-linux-gnu/asm/unistd_32.h"),
])  # fmt: skip
def test_tables_match_kernel_headers(arch: str, header: str) -> None:
    if not os.path.exists(header):
        pytest.skip(f"{header} not installed")
    numbers = {m[1]: int(m[2]) for m in re.finditer(r"#define __NR_(\w+)\s+(\d+)", Path(header).read_text())}
    table = seccomp_profile.syscall_table(arch)
    assert {name: table.get(name) for name in numbers} == numbers


# --- real containers (root) -------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="runs containers as root")
PARENT = f"dockyard-test-seccomp-{uuid.uuid4().hex[:8]}"
SMALL_SET = (
    "execve brk arch_prctl set_tid_address set_robust_list rseq prlimit64 readlink getrandom mprotect uname getuid"
    " getpid getppid prctl newfstatat rt_sigaction rt_sigreturn clone wait4 write exit exit_group"
).split()


@pytest.fixture(scope="module")
def rootfs_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("seccomp") / "rootfs")


@pytest.fixture(scope="module")
def cgroup_parent():  # type: ignore[no-untyped-def]
    yield PARENT
    for root in {*v1_mountpoints().values(), "/sys/fs/cgroup/unified", "/sys/fs/cgroup"}:
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(root, PARENT))


@pytest.fixture
def bundle(tmp_path: Path, rootfs_template: Path, cgroup_parent: str):  # type: ignore[no-untyped-def]
    """make(cmd, host=..., edit=...) writes config.json for `cmd` and returns the bundle and id."""

    def make(cmd: list[str], host: dict | None = None, process: dict | None = None) -> tuple[Path, str]:
        cid = uuid.uuid4().hex
        path = tmp_path / cid[:12]
        shutil.copytree(rootfs_template, path / "rootfs", symlinks=True)
        container = {"Id": cid, "Path": cmd[0], "Args": cmd[1:], "Config": {}, "HostConfig": host or {}}
        spec = build_spec(container, str(path / "rootfs"), cgroups_path=f"/{cgroup_parent}/{cid}")
        spec["process"].update(process or {})
        write_json(path / "config.json", spec)
        return path, cid

    return make


def run_builtin(bundle_dir: Path, cid: str) -> tuple[int, str, str]:
    """create + start + wait under the builtin runtime; the caller (us) becomes a subreaper meanwhile."""
    runtime = BuiltinRuntime(str(bundle_dir.parent / "state"))
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = None
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    try:
        try:
            pid = runtime.create(cid, str(bundle_dir), Stdio(None, out_w, err_w))
        finally:
            os.close(out_w)
            os.close(err_w)
        runtime.start(cid)
        with os.fdopen(out_r, "rb") as out, os.fdopen(err_r, "rb") as err:
            out_r = err_r = -1
            stdout, stderr = out.read().decode(), err.read().decode()
        _, status = os.waitpid(pid, 0)
        pid = None
        return os.waitstatus_to_exitcode(status), stdout, stderr
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        for fd in (out_r, err_r):
            if fd >= 0:
                os.close(fd)
        runtime.delete(cid)
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 0)


def _grantable_capabilities() -> dict:
    """Privileged asks for every capability; a sandboxed test host may lack some in its bounding set."""
    with open("/proc/self/status") as f:
        bounding = int(next(line for line in f if line.startswith("CapBnd:")).split()[1], 16)
    names = [name for name in all_capabilities() if bounding >> CAP_NUMBERS[name] & 1]
    return {"capabilities": {"bounding": names, "effective": names, "permitted": names}}


@needs_root
def test_default_profile_in_a_container(bundle) -> None:  # type: ignore[no-untyped-def]
    script = "grep Seccomp: /proc/self/status; unshare -U true; echo unshare=$?"
    code, out, err = run_builtin(*bundle(["sh", "-c", script]))
    assert code == 0
    assert "Seccomp:\t2" in out and "unshare=1" in out
    assert "Operation not permitted" in err


@needs_root
def test_unconfined_and_privileged_get_no_filter(bundle) -> None:  # type: ignore[no-untyped-def]
    script = "grep Seccomp: /proc/self/status; unshare -U true && echo unshare=ok"
    code, out, err = run_builtin(*bundle(["sh", "-c", script], {"SecurityOpt": ["seccomp=unconfined"]}))
    assert (code, out) == (0, "Seccomp:\t0\nunshare=ok\n"), err
    privileged = bundle(["grep", "Seccomp:", "/proc/self/status"], {"Privileged": True}, _grantable_capabilities())
    code, out, _ = run_builtin(*privileged)
    assert (code, out) == (0, "Seccomp:\t0\n")


@needs_root
def test_everyday_workloads_still_work(bundle) -> None:  # type: ignore[no-untyped-def]
    script = (
        "ls / >/dev/null && ps >/dev/null && date >/dev/null && sleep 0.1 && id -u && (true &) && wait"
        " && nc 127.0.0.1 1 </dev/null; echo nc=$?"  # a TCP connect on loopback: refused, not denied
    )
    code, out, err = run_builtin(*bundle(["sh", "-c", script]))
    assert (code, out) == (0, "0\nnc=1\n"), err
    assert "not permitted" not in err


@needs_root
def test_user_and_no_new_privileges_paths(bundle) -> None:  # type: ignore[no-untyped-def]
    script = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; id -u"
    for opts in ([], ["no-new-privileges"]):  # loaded before the capability drop, or right before execve
        host = {"SecurityOpt": opts}
        code, out, err = run_builtin(*bundle(["sh", "-c", script], host, {"user": {"uid": 1000, "gid": 1000}}))
        assert code == 0, err
        assert out == f"NoNewPrivs:\t{1 if opts else 0}\nSeccomp:\t2\n1000\n"


@needs_root
def test_custom_errno_profile(bundle) -> None:  # type: ignore[no-untyped-def]
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EACCES,
        "syscalls": [
            {"names": SMALL_SET, "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS},
        ],
    }
    host = {"SecurityOpt": ["no-new-privileges", "seccomp=" + json.dumps(profile)]}
    code, out, err = run_builtin(*bundle(["sh", "-c", "echo hi; mkdir /x; rmdir /tmp"], host))
    assert out == "hi\n"
    assert "mkdir: can't create directory '/x': Read-only file system" in err
    assert "rmdir: '/tmp': Permission denied" in err
    assert code == 1


@needs_root
@pytest.mark.parametrize("runtime", ["/usr/sbin/runc", "/usr/bin/crun"])
def test_spec_runs_under_oci_runtimes(bundle, runtime: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if not os.path.exists(runtime):
        pytest.skip(f"{runtime} not installed")
    script = "grep Seccomp: /proc/self/status; unshare -U true; echo unshare=$?"
    bundle_dir, cid = bundle(["sh", "-c", script])
    root = tmp_path / "oci-root"
    try:
        result = subprocess.run(
            [runtime, "--root", str(root), "run", "--bundle", str(bundle_dir), cid],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        subprocess.run([runtime, "--root", str(root), "delete", "--force", cid], capture_output=True, check=False)
    if "hybrid mode not supported" in result.stderr:
        pytest.skip(f"{runtime} cannot run on this cgroup v1 hybrid host at all")
    assert result.returncode == 0, result.stderr
    assert "Seccomp:\t2" in result.stdout and "unshare=1" in result.stdout
    assert "Operation not permitted" in result.stderr
