"""Landlock (Linux >= 5.13): unprivileged file-system, network and signal confinement of the calling process.

Called through raw syscalls via ctypes because the stdlib has no binding. Everything not explicitly allowed is
denied: a candidate can read the Python installation and read/write its private temp dir, nothing else; it can
execute no file, bind or connect no TCP socket, and (ABI >= 6) signal no process outside its own domain.
"""

from __future__ import annotations

import ctypes
import os
import struct

_SYS_CREATE, _SYS_ADD_RULE, _SYS_RESTRICT = 444, 445, 446  # same numbers on every architecture
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1

_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
READ_ONLY = FS_READ_FILE | FS_READ_DIR
READ_WRITE = (READ_ONLY | FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_DIR | FS_MAKE_REG
              | FS_MAKE_SYM | FS_MAKE_FIFO | FS_MAKE_SOCK | FS_REFER | FS_TRUNCATE)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def abi_version() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is unavailable."""
    try:
        version = _libc.syscall(_SYS_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except (AttributeError, OSError):
        return 0
    return max(int(version), 0)


def _handled_fs(abi: int) -> int:
    handled = (1 << 13) - 1
    if abi >= 2:
        handled |= FS_REFER
    if abi >= 3:
        handled |= FS_TRUNCATE
    if abi >= 5:
        handled |= FS_IOCTL_DEV
    return handled


def restrict(rules: dict[str, int], abi: int | None = None) -> int:
    """Confine this process (and its future children) to ``rules`` (path -> allowed access bits).

    Paths that do not exist are skipped. Returns the ABI used. Raises OSError if the kernel refuses.
    Requires no_new_privs or CAP_SYS_ADMIN (the caller sets no_new_privs first).
    """
    abi = abi_version() if abi is None else abi
    with PreparedRules(rules, abi) as prepared:
        prepared.restrict()
    return abi


class PreparedRules:
    """Rules resolved once (paths opened, rule records packed), applied by many processes.

    A zygote prepares the rules every child shares; each forked child adds its own work dir and applies them,
    which skips the per-path Python work in the child. (A rule on a directory does not reach a file system
    mounted over it later, so the work dir, a fresh tmpfs per child, is added by the child itself.)
    """

    def __init__(self, rules: dict[str, int], abi: int) -> None:
        if abi <= 0:
            raise OSError("landlock unavailable")
        self.abi, self.handled_fs = abi, _handled_fs(abi)
        fields = [self.handled_fs]
        if abi >= 4:
            fields.append(NET_BIND_TCP | NET_CONNECT_TCP)
        if abi >= 6:
            fields.append(SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL)
        self._attr = struct.pack(f"={len(fields)}Q", *fields)
        self._fds: list[int] = []
        self._records: list[bytes] = []
        for path, access in rules.items():
            record = self._record(path, access)
            if record is not None:
                self._records.append(record)

    def _record(self, path: str, access: int) -> bytes | None:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return None
        self._fds.append(fd)
        allowed = access & self.handled_fs
        if not os.path.isdir(path):
            allowed &= _FILE_RIGHTS
        return struct.pack("=Qi", allowed, fd)

    def restrict(self, extra: dict[str, int] | None = None) -> None:
        """Confine the calling process to these rules plus ``extra`` (path -> access)."""
        records = self._records + [r for r in (self._record(p, a) for p, a in (extra or {}).items()) if r]
        ruleset = _libc.syscall(_SYS_CREATE, ctypes.c_char_p(self._attr), ctypes.c_size_t(len(self._attr)),
                                ctypes.c_uint32(0))
        if ruleset < 0:
            raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
        try:
            for record in records:
                if _libc.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH),
                                 ctypes.c_char_p(record), ctypes.c_uint32(0)) < 0:
                    raise OSError(ctypes.get_errno(), "landlock_add_rule failed")
            if _libc.syscall(_SYS_RESTRICT, ctypes.c_int(ruleset), ctypes.c_uint32(0)) < 0:
                raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
        finally:
            os.close(ruleset)

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> PreparedRules:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
