"""OS isolation primitives for candidate processes: namespaces, mounts, rlimits, privilege drop.

Each primitive is probed once at start-up (:func:`probe`) so the pool can log what is in force and skip what the
kernel refuses, instead of failing every candidate.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import resource
import sys

from next_jax.execution import landlock

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACES = {"mount": CLONE_NEWNS, "uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC, "pid": CLONE_NEWPID,
              "net": CLONE_NEWNET}

MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 0x4000, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                       ctypes.c_ulong(flags), data.encode() if data else None), f"mount {target}")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0),
                       ctypes.c_ulong(0)), "prctl")


def join_cgroups(procs_files: list[str]) -> None:
    """Move the calling process into the given cgroups (a child does this before it forks anything).

    Writes ``0`` (the writer itself): the caller may be pid 1 of its own pid namespace, and its pid there names
    another process in the cgroup file system's view. (Here, not in ``cgroups``: that module logs, and a zygote
    that imports ``logging`` and so ``threading`` pays for their fork handlers on every fork.)
    """
    for path in procs_files:
        with open(path, "w") as f:
            f.write("0")


def set_process_name(name: str) -> None:
    """The name ``ps`` and ``perf`` show (at most 15 bytes): tells zygotes, candidates and judges apart."""
    _libc.prctl(ctypes.c_int(15), ctypes.c_char_p(name.encode()[:15]), ctypes.c_ulong(0), ctypes.c_ulong(0),
                ctypes.c_ulong(0))  # PR_SET_NAME


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What this kernel and user let the sandbox use (probed once)."""

    namespaces: tuple[str, ...]
    landlock_abi: int
    can_drop_uid: bool

    def describe(self) -> str:
        ns = ",".join(self.namespaces) or "none"
        return (f"namespaces={ns} landlock_abi={self.landlock_abi} "
                f"uid_drop={'yes' if self.can_drop_uid else 'no (not root)'}")


def probe() -> Capabilities:
    """Try each namespace in a throw-away child; report what works."""
    working = []
    for name, flag in NAMESPACES.items():
        pid = os.fork()
        if pid == 0:
            try:
                unshare(flag)
                os._exit(0)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) == 0:
            working.append(name)
    return Capabilities(tuple(working), landlock.abi_version(), os.geteuid() == 0)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed process (soft = hard for every one)."""

    cpu_seconds: int = 10
    memory_bytes: int = 2 << 30  # address space
    processes: int = 16  # per uid; each candidate slot has its own uid
    file_bytes: int = 16 << 20
    open_files: int = 64
    tmp_bytes: int = 32 << 20  # size of the private tmpfs

    def apply(self) -> None:
        stack = resource.getrlimit(resource.RLIMIT_STACK)[0]
        stack = 8 << 20 if stack == resource.RLIM_INFINITY else stack
        pairs = [
            (resource.RLIMIT_CPU, self.cpu_seconds),
            (resource.RLIMIT_AS, self.memory_bytes),
            (resource.RLIMIT_NPROC, self.processes),
            (resource.RLIMIT_FSIZE, self.file_bytes),
            (resource.RLIMIT_NOFILE, self.open_files),
            (resource.RLIMIT_CORE, 0),
            (resource.RLIMIT_STACK, stack),
            (resource.RLIMIT_MEMLOCK, 0),
            (resource.RLIMIT_MSGQUEUE, 0),
        ]
        for which, value in pairs:
            resource.setrlimit(which, (value, value))


def read_only_roots() -> list[str]:
    """Directories a Python candidate must read: the interpreter, stdlib, site-packages, shared libraries."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, "/usr", "/lib", "/lib64",
             "/etc/ld.so.cache", "/etc/localtime", "/dev/urandom", "/dev/random", "/dev/zero"}
    for entry in sys.path:
        if entry.endswith(("site-packages", "dist-packages")) and os.path.isdir(entry):
            roots.add(entry)
    return sorted(roots)


def shared_filesystem_rules() -> dict[str, int]:
    """Landlock rules every child shares: read the Python installation and /dev/null; no exec anywhere."""
    rules = {path: landlock.READ_ONLY for path in read_only_roots()}
    rules["/dev/null"] = landlock.FS_READ_FILE | landlock.FS_WRITE_FILE
    return rules


def confine_filesystem(workdir: str, prepared: landlock.PreparedRules | None = None) -> None:
    """Landlock: the shared rules (``prepared`` once by the zygote, else resolved here) plus read/write on
    ``workdir``; by the ABI also no TCP, and no signals or abstract unix sockets beyond the process's domain."""
    extra = {workdir: landlock.READ_WRITE}
    if prepared is not None:
        prepared.restrict(extra)
    else:
        landlock.restrict(shared_filesystem_rules() | extra)


def drop_privileges(uid: int, gid: int) -> None:
    """Become an unprivileged uid/gid for good (real, effective and saved ids), with no_new_privs."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    if os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
