"""dockyard's default seccomp profile (the policy of moby's profiles/seccomp/default.json) as Python
data, docker's profile-to-spec filtering (capabilities, arches, kernel version), and the syscall
number tables the BPF compiler resolves names with.

Profiles use docker's format (`archMap`, `includes`/`excludes`) so a user's profile sent with
`--security-opt seccomp=<json>` goes through the same filtering as the default one.
"""

from __future__ import annotations

import errno
import os

from dockyard.errors import InvalidParameter

TYPE_CHECKING = False  # typing stays out of every monitor's memory
if TYPE_CHECKING:
    from typing import Any

# Go's GOARCH (docker's `includes.arches` vocabulary) for each kernel machine name.
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386"}
# OCI SCMP_ARCH_* name -> the table key below (None: known to the BPF, no table shipped).
SCMP_ARCH_TABLES = {
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_X32": None,
    "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_ARM": None,
}
# Native SCMP arch per machine and the sub-architectures docker lists with it.
ARCH_MAP = {
    "x86_64": ("SCMP_ARCH_X86_64", ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
    "aarch64": ("SCMP_ARCH_AARCH64", ["SCMP_ARCH_ARM"]),
}


def _allow(names: str, **extra: Any) -> dict[str, Any]:
    return {"names": names.split(), "action": "SCMP_ACT_ALLOW", **extra}


def _arg(index: int, value: int, op: str) -> dict[str, Any]:
    return {"index": index, "value": value, "op": op}


# Namespace-creating clone flags (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET).
CLONE_NAMESPACE_FLAGS = 0x7E020000
AF_VSOCK = 40
# personality(2) values docker allows: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, query.
PERSONALITY_VALUES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

_BASE_ALLOWED = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create
epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2
execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork
fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex
futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat getcpu getcwd getdents getdents64
getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid
getpgrp getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit
get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32
getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy
io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter
io_uring_register io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self
lchown lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat
lstat64 madvise map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat
mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync
munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause
pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl
pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read
readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages
removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask
rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
sched_getaffinity sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min
sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr
sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32
setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid
setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt
set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack
signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx
symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname
unlink unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
"""


def _only_with(names: str, cap: str) -> dict[str, Any]:
    return _allow(names, includes={"caps": [cap]})


# The policy of docker's default profile: deny with EPERM unless allowed below.
DEFAULT_PROFILE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": errno.EPERM,
    "archMap": [{"architecture": native, "subArchitectures": subs} for native, subs in ARCH_MAP.values()],
    "syscalls": [
        _allow(_BASE_ALLOWED),
        _allow("process_vm_readv process_vm_writev ptrace", includes={"minKernel": "4.8"}),
        _allow("socket", args=[_arg(0, AF_VSOCK, "SCMP_CMP_NE")]),
        *(_allow("personality", args=[_arg(0, value, "SCMP_CMP_EQ")]) for value in PERSONALITY_VALUES),
        _allow("sync_file_range2 swapcontext", includes={"arches": ["ppc64le"]}),
        _allow(
            "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
            includes={"arches": ["arm", "arm64"]},
        ),
        _allow("arch_prctl", includes={"arches": ["amd64", "x32"]}),
        _allow("modify_ldt", includes={"arches": ["amd64", "x32", "x86"]}),
        _allow("s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr", includes={"arches": ["s390", "s390x"]}),
        _allow("riscv_flush_icache", includes={"arches": ["riscv64"]}),
        _only_with("open_by_handle_at", "CAP_DAC_READ_SEARCH"),
        _only_with(
            "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr"
            " move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog"
            " umount umount2 unshare",
            "CAP_SYS_ADMIN",
        ),
        # Without CAP_SYS_ADMIN: clone only without namespace flags (s390 swaps the first two args).
        _allow(
            "clone",
            args=[_arg(0, CLONE_NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ")],
            excludes={"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]},
        ),
        _allow(
            "clone",
            args=[_arg(1, CLONE_NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ")],
            includes={"arches": ["s390", "s390x"]},
            excludes={"caps": ["CAP_SYS_ADMIN"]},
        ),
        # clone3 hides its flags in a struct BPF cannot read: ENOSYS makes libc fall back to clone.
        {
            "names": ["clone3"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.ENOSYS,
            "excludes": {"caps": ["CAP_SYS_ADMIN"]},
        },
        _only_with("reboot", "CAP_SYS_BOOT"),
        _only_with("chroot", "CAP_SYS_CHROOT"),
        _only_with("delete_module init_module finit_module", "CAP_SYS_MODULE"),
        _only_with("acct", "CAP_SYS_PACCT"),
        _only_with("kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace", "CAP_SYS_PTRACE"),
        _only_with("iopl ioperm", "CAP_SYS_RAWIO"),
        _only_with("settimeofday stime clock_settime clock_settime64", "CAP_SYS_TIME"),
        _only_with("vhangup", "CAP_SYS_TTY_CONFIG"),
        _only_with("get_mempolicy mbind set_mempolicy set_mempolicy_home_node", "CAP_SYS_NICE"),
        _only_with("syslog", "CAP_SYSLOG"),
        _only_with("bpf", "CAP_BPF"),
        _only_with("perf_event_open", "CAP_PERFMON"),
    ],
}


class ProfileError(InvalidParameter):
    """A seccomp profile docker would refuse (400 from the Engine API)."""


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of the running kernel, for `minKernel` conditions."""
    release = release or os.uname().release
    parts = release.split("-", 1)[0].split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return 0, 0


def _below(kernel: tuple[int, int], min_kernel: str) -> bool:
    return kernel < kernel_version(min_kernel)


def to_spec(
    profile: dict[str, Any],
    capabilities: list[str],
    machine: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The OCI `linux.seccomp` for a docker-format profile, as moby's setupSeccomp builds it: the
    host's architectures, and only the rules whose includes/excludes fit `capabilities` (the bounding
    set), the host arch and the kernel version."""
    machine = machine or os.uname().machine
    kernel = kernel or kernel_version()
    goarch = GOARCH.get(machine, machine)
    if profile.get("architectures") and profile.get("archMap"):
        raise ProfileError(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, use either "
            "'architectures' or 'archMap'"
        )
    spec: dict[str, Any] = {"defaultAction": profile.get("defaultAction") or "SCMP_ACT_ERRNO"}
    if profile.get("defaultErrnoRet") is not None:
        spec["defaultErrnoRet"] = int(profile["defaultErrnoRet"])
    spec["architectures"] = _architectures(profile, machine)
    if profile.get("flags"):
        spec["flags"] = list(profile["flags"])
    capset = set(capabilities)
    syscalls = []
    for rule in profile.get("syscalls") or ():
        names = _rule_names(rule)
        if _rule_applies(rule, goarch, capset, kernel):
            syscalls.append(_spec_rule(names, rule))
    spec["syscalls"] = syscalls
    return spec


def _architectures(profile: dict[str, Any], machine: str) -> list[str]:
    if profile.get("architectures"):
        return list(profile["architectures"])
    native = ARCH_MAP.get(machine, (None, []))[0]
    for entry in profile.get("archMap") or ():
        if entry.get("architecture") == native:
            return [native, *(entry.get("subArchitectures") or [])]
    return []


def _rule_names(rule: dict[str, Any]) -> list[str]:
    if rule.get("name") and rule.get("names"):
        raise ProfileError("use either 'name' or 'names'")
    return [rule["name"]] if rule.get("name") else list(rule.get("names") or [])


def _rule_applies(rule: dict[str, Any], goarch: str, caps: set[str], kernel: tuple[int, int]) -> bool:
    includes, excludes = rule.get("includes") or {}, rule.get("excludes") or {}
    if goarch in (excludes.get("arches") or ()):
        return False
    if includes.get("arches") and goarch not in includes["arches"]:
        return False
    if caps.intersection(excludes.get("caps") or ()):
        return False
    if excludes.get("minKernel") and not _below(kernel, excludes["minKernel"]):
        return False
    if not caps.issuperset(includes.get("caps") or ()):
        return False
    return not (includes.get("minKernel") and _below(kernel, includes["minKernel"]))


def _spec_rule(names: list[str], rule: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"names": names, "action": rule.get("action") or "SCMP_ACT_ALLOW"}
    entry["args"] = [
        {
            "index": int(arg.get("index", 0)),
            "value": int(arg.get("value", 0)),
            "valueTwo": int(arg.get("valueTwo", 0)),
            "op": arg.get("op") or "SCMP_CMP_EQ",
        }
        for arg in rule.get("args") or ()
    ]
    if rule.get("errnoRet") is not None:
        entry["errnoRet"] = int(rule["errnoRet"])
    return entry


def container_seccomp(security_opts: list[str], capabilities: list[str]) -> dict[str, Any] | None:
    """linux.seccomp for a (non-privileged) container's SecurityOpt, as the docker daemon decides:
    `seccomp=unconfined` none, `seccomp=<profile json>` (docker's CLI sends the file's content) that
    profile, otherwise the default profile."""
    import json

    profile: dict[str, Any] = DEFAULT_PROFILE
    for opt in security_opts:
        key, value = _split_opt(opt)
        if key != "seccomp" or value in ("", "builtin"):
            continue
        if value == "unconfined":
            return None
        try:
            profile = json.loads(value)
        except ValueError as exc:
            raise ProfileError(f"Decoding seccomp profile failed: {exc}") from None
        if not isinstance(profile, dict):
            raise ProfileError("Decoding seccomp profile failed: the profile must be a JSON object")
    return to_spec(profile, capabilities)


def _split_opt(opt: str) -> tuple[str, str]:
    """docker splits on the first '=' (the legacy form uses ':')."""
    separator = "=" if "=" in opt else ":"
    key, _, value = opt.partition(separator)
    return key.strip(), value.strip()


# --- syscall numbers --------------------------------------------------------------------------------
# Generated from the kernel's uapi headers (asm/unistd_64.h, asm/unistd_32.h, asm-generic/unistd.h as
# arm64 includes it) plus the syscalls added since (451-456, the same number on every arch). Each line
# starts with "N:"; the following names take N, N+1, ...; tests/unit/test_seccomp.py checks them
# against the headers when these are installed.
_TABLES = {
    "x86_64": """
0: read write open close stat fstat lstat poll lseek mmap mprotect munmap brk rt_sigaction rt_sigprocmask
rt_sigreturn ioctl pread64 pwrite64 readv writev access pipe select sched_yield mremap msync mincore madvise
shmget shmat shmctl dup dup2 pause nanosleep getitimer alarm setitimer getpid sendfile socket connect accept
sendto recvfrom sendmsg recvmsg shutdown bind listen getsockname getpeername socketpair setsockopt
getsockopt clone fork vfork execve exit wait4 kill uname semget semop semctl shmdt msgget msgsnd msgrcv
msgctl fcntl flock fsync fdatasync truncate ftruncate getdents getcwd chdir fchdir rename mkdir rmdir creat
link unlink symlink readlink chmod fchmod chown fchown lchown umask gettimeofday getrlimit getrusage sysinfo
times ptrace getuid syslog getgid setuid setgid geteuid getegid setpgid getppid getpgrp setsid setreuid
setregid getgroups setgroups setresuid getresuid setresgid getresgid getpgid setfsuid setfsgid getsid capget
capset rt_sigpending rt_sigtimedwait rt_sigqueueinfo rt_sigsuspend sigaltstack utime mknod uselib
personality ustat statfs fstatfs sysfs getpriority setpriority sched_setparam sched_getparam
sched_setscheduler sched_getscheduler sched_get_priority_max sched_get_priority_min sched_rr_get_interval
mlock munlock mlockall munlockall vhangup modify_ldt pivot_root _sysctl prctl arch_prctl adjtimex setrlimit
chroot sync acct settimeofday mount umount2 swapon swapoff reboot sethostname setdomainname iopl ioperm
create_module init_module delete_module get_kernel_syms query_module quotactl nfsservctl getpmsg putpmsg
afs_syscall tuxcall security gettid readahead setxattr lsetxattr fsetxattr getxattr lgetxattr fgetxattr
listxattr llistxattr flistxattr removexattr lremovexattr fremovexattr tkill time futex sched_setaffinity
sched_getaffinity set_thread_area io_setup io_destroy io_getevents io_submit io_cancel get_thread_area
lookup_dcookie epoll_create epoll_ctl_old epoll_wait_old remap_file_pages getdents64 set_tid_address
restart_syscall semtimedop fadvise64 timer_create timer_settime timer_gettime timer_getoverrun timer_delete
clock_settime clock_gettime clock_getres clock_nanosleep exit_group epoll_wait epoll_ctl tgkill utimes
vserver mbind set_mempolicy get_mempolicy mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify
mq_getsetattr kexec_load waitid add_key request_key keyctl ioprio_set ioprio_get inotify_init
inotify_add_watch inotify_rm_watch migrate_pages openat mkdirat mknodat fchownat futimesat newfstatat
unlinkat renameat linkat symlinkat readlinkat fchmodat faccessat pselect6 ppoll unshare set_robust_list
get_robust_list splice tee sync_file_range vmsplice move_pages utimensat epoll_pwait signalfd timerfd_create
eventfd fallocate timerfd_settime timerfd_gettime accept4 signalfd4 eventfd2 epoll_create1 dup3 pipe2
inotify_init1 preadv pwritev rt_tgsigqueueinfo perf_event_open recvmmsg fanotify_init fanotify_mark
prlimit64 name_to_handle_at open_by_handle_at clock_adjtime syncfs sendmmsg setns getcpu process_vm_readv
process_vm_writev kcmp finit_module sched_setattr sched_getattr renameat2 seccomp getrandom memfd_create
kexec_file_load bpf execveat userfaultfd membarrier mlock2 copy_file_range preadv2 pwritev2 pkey_mprotect
pkey_alloc pkey_free statx io_pgetevents rseq
424: pidfd_send_signal io_uring_setup io_uring_enter io_uring_register open_tree move_mount fsopen fsconfig
fsmount fspick pidfd_open clone3 close_range openat2 pidfd_getfd faccessat2 process_madvise epoll_pwait2
mount_setattr quotactl_fd landlock_create_ruleset landlock_add_rule landlock_restrict_self memfd_secret
process_mrelease futex_waitv set_mempolicy_home_node cachestat fchmodat2 map_shadow_stack futex_wake
futex_wait futex_requeue
""",
    "x86": """
0: restart_syscall exit fork read write open close waitpid creat link unlink execve chdir time mknod chmod
lchown break oldstat lseek getpid mount umount setuid getuid stime ptrace alarm oldfstat pause utime stty
gtty access nice ftime sync kill rename mkdir rmdir dup pipe times prof brk setgid getgid signal geteuid
getegid acct umount2 lock ioctl fcntl mpx setpgid ulimit oldolduname umask chroot ustat dup2 getppid getpgrp
setsid sigaction sgetmask ssetmask setreuid setregid sigsuspend sigpending sethostname setrlimit getrlimit
getrusage gettimeofday settimeofday getgroups setgroups select symlink oldlstat readlink uselib swapon
reboot readdir mmap munmap truncate ftruncate fchmod fchown getpriority setpriority profil statfs fstatfs
ioperm socketcall syslog setitimer getitimer stat lstat fstat olduname iopl vhangup idle vm86old wait4
swapoff sysinfo ipc fsync sigreturn clone setdomainname uname modify_ldt adjtimex mprotect sigprocmask
create_module init_module delete_module get_kernel_syms quotactl getpgid fchdir bdflush sysfs personality
afs_syscall setfsuid setfsgid _llseek getdents _newselect flock msync readv writev getsid fdatasync _sysctl
mlock munlock mlockall munlockall sched_setparam sched_getparam sched_setscheduler sched_getscheduler
sched_yield sched_get_priority_max sched_get_priority_min sched_rr_get_interval nanosleep mremap setresuid
getresuid vm86 query_module poll nfsservctl setresgid getresgid prctl rt_sigreturn rt_sigaction
rt_sigprocmask rt_sigpending rt_sigtimedwait rt_sigqueueinfo rt_sigsuspend pread64 pwrite64 chown getcwd
capget capset sigaltstack sendfile getpmsg putpmsg vfork ugetrlimit mmap2 truncate64 ftruncate64 stat64
lstat64 fstat64 lchown32 getuid32 getgid32 geteuid32 getegid32 setreuid32 setregid32 getgroups32 setgroups32
fchown32 setresuid32 getresuid32 setresgid32 getresgid32 chown32 setuid32 setgid32 setfsuid32 setfsgid32
pivot_root mincore madvise getdents64 fcntl64
224: gettid readahead setxattr lsetxattr fsetxattr getxattr lgetxattr fgetxattr listxattr llistxattr
flistxattr removexattr lremovexattr fremovexattr tkill sendfile64 futex sched_setaffinity sched_getaffinity
set_thread_area get_thread_area io_setup io_destroy io_getevents io_submit io_cancel fadvise64
252: exit_group lookup_dcookie epoll_create epoll_ctl epoll_wait remap_file_pages set_tid_address
timer_create timer_settime timer_gettime timer_getoverrun timer_delete clock_settime clock_gettime
clock_getres clock_nanosleep statfs64 fstatfs64 tgkill utimes fadvise64_64 vserver mbind get_mempolicy
set_mempolicy mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr kexec_load waitid
286: add_key request_key keyctl ioprio_set ioprio_get inotify_init inotify_add_watch inotify_rm_watch
migrate_pages openat mkdirat mknodat fchownat futimesat fstatat64 unlinkat renameat linkat symlinkat
readlinkat fchmodat faccessat pselect6 ppoll unshare set_robust_list get_robust_list splice sync_file_range
tee vmsplice move_pages getcpu epoll_pwait utimensat signalfd timerfd_create eventfd fallocate
timerfd_settime timerfd_gettime signalfd4 eventfd2 epoll_create1 dup3 pipe2 inotify_init1 preadv pwritev
rt_tgsigqueueinfo perf_event_open recvmmsg fanotify_init fanotify_mark prlimit64 name_to_handle_at
open_by_handle_at clock_adjtime syncfs sendmmsg setns process_vm_readv process_vm_writev kcmp finit_module
sched_setattr sched_getattr renameat2 seccomp getrandom memfd_create bpf execveat socket socketpair bind
connect listen accept4 getsockopt setsockopt getsockname getpeername sendto sendmsg recvfrom recvmsg
shutdown userfaultfd membarrier mlock2 copy_file_range preadv2 pwritev2 pkey_mprotect pkey_alloc pkey_free
statx arch_prctl io_pgetevents rseq
393: semget semctl shmget shmctl shmat shmdt msgget msgsnd msgrcv msgctl clock_gettime64 clock_settime64
clock_adjtime64 clock_getres_time64 clock_nanosleep_time64 timer_gettime64 timer_settime64 timerfd_gettime64
timerfd_settime64 utimensat_time64 pselect6_time64 ppoll_time64
416: io_pgetevents_time64 recvmmsg_time64 mq_timedsend_time64 mq_timedreceive_time64 semtimedop_time64
rt_sigtimedwait_time64 futex_time64 sched_rr_get_interval_time64 pidfd_send_signal io_uring_setup
io_uring_enter io_uring_register open_tree move_mount fsopen fsconfig fsmount fspick pidfd_open clone3
close_range openat2 pidfd_getfd faccessat2 process_madvise epoll_pwait2 mount_setattr quotactl_fd
landlock_create_ruleset landlock_add_rule landlock_restrict_self memfd_secret process_mrelease futex_waitv
set_mempolicy_home_node cachestat fchmodat2 map_shadow_stack futex_wake futex_wait futex_requeue
""",
    "aarch64": """
0: io_setup io_destroy io_submit io_cancel io_getevents setxattr lsetxattr fsetxattr getxattr lgetxattr
fgetxattr listxattr llistxattr flistxattr removexattr lremovexattr fremovexattr getcwd lookup_dcookie
eventfd2 epoll_create1 epoll_ctl epoll_pwait dup dup3 fcntl inotify_init1 inotify_add_watch inotify_rm_watch
ioctl ioprio_set ioprio_get flock mknodat mkdirat unlinkat symlinkat linkat renameat umount2 mount
pivot_root nfsservctl statfs fstatfs truncate ftruncate fallocate faccessat chdir fchdir chroot fchmod
fchmodat fchownat fchown openat close vhangup pipe2 quotactl getdents64 lseek read write readv writev
pread64 pwrite64 preadv pwritev sendfile pselect6 ppoll signalfd4 vmsplice splice tee readlinkat newfstatat
fstat sync fsync fdatasync sync_file_range timerfd_create timerfd_settime timerfd_gettime utimensat acct
capget capset personality exit exit_group waitid set_tid_address unshare futex set_robust_list
get_robust_list nanosleep getitimer setitimer kexec_load init_module delete_module timer_create
timer_gettime timer_getoverrun timer_settime timer_delete clock_settime clock_gettime clock_getres
clock_nanosleep syslog ptrace sched_setparam sched_setscheduler sched_getscheduler sched_getparam
sched_setaffinity sched_getaffinity sched_yield sched_get_priority_max sched_get_priority_min
sched_rr_get_interval restart_syscall kill tkill tgkill sigaltstack rt_sigsuspend rt_sigaction
rt_sigprocmask rt_sigpending rt_sigtimedwait rt_sigqueueinfo rt_sigreturn setpriority getpriority reboot
setregid setgid setreuid setuid setresuid getresuid setresgid getresgid setfsuid setfsgid times setpgid
getpgid getsid setsid getgroups setgroups uname sethostname setdomainname getrlimit setrlimit getrusage
umask prctl getcpu gettimeofday settimeofday adjtimex getpid getppid getuid geteuid getgid getegid gettid
sysinfo mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr msgget msgctl msgrcv msgsnd
semget semctl semtimedop semop shmget shmctl shmat shmdt socket socketpair bind listen accept connect
getsockname getpeername sendto recvfrom setsockopt getsockopt shutdown sendmsg recvmsg readahead brk munmap
mremap add_key request_key keyctl clone execve mmap fadvise64 swapon swapoff mprotect msync mlock munlock
mlockall munlockall mincore madvise remap_file_pages mbind get_mempolicy set_mempolicy migrate_pages
move_pages rt_tgsigqueueinfo perf_event_open accept4 recvmmsg
260: wait4 prlimit64 fanotify_init fanotify_mark name_to_handle_at open_by_handle_at clock_adjtime syncfs
setns sendmmsg process_vm_readv process_vm_writev kcmp finit_module sched_setattr sched_getattr renameat2
seccomp getrandom memfd_create bpf execveat userfaultfd membarrier mlock2 copy_file_range preadv2 pwritev2
pkey_mprotect pkey_alloc pkey_free statx io_pgetevents rseq kexec_file_load
424: pidfd_send_signal io_uring_setup io_uring_enter io_uring_register open_tree move_mount fsopen fsconfig
fsmount fspick pidfd_open clone3 close_range openat2 pidfd_getfd faccessat2 process_madvise epoll_pwait2
mount_setattr quotactl_fd landlock_create_ruleset landlock_add_rule landlock_restrict_self memfd_secret
process_mrelease futex_waitv set_mempolicy_home_node cachestat fchmodat2 map_shadow_stack futex_wake
futex_wait futex_requeue
""",
}
_parsed: dict[str, dict[str, int]] = {}


def syscall_table(arch: str) -> dict[str, int]:
    """name -> number for a table key ("x86_64", "x86", "aarch64"); KeyError for others."""
    if arch not in _parsed:
        table: dict[str, int] = {}
        number = 0
        for token in _TABLES[arch].split():
            if token.endswith(":"):
                number = int(token[:-1])
            else:
                table[token] = number
                number += 1
        _parsed[arch] = table
    return _parsed[arch]
