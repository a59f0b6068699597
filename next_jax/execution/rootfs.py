"""A minimal, read-only root file system for sandboxed children.

Built once per zygote, in the zygote's private mount namespace: a tmpfs holding read-only bind mounts of exactly
what a Python child needs (``/usr``, the interpreter's prefixes, an allow-list of site packages, four device
nodes). Each child mounts its own size-capped ``/tmp`` and a ``/proc`` of its pid namespace into a copy of this tree
and ``chroot``s into it. Nothing else of the host is reachable: not the repository, not test data, not data files
shipped inside other installed packages, not unix sockets under ``/run`` or the home directory.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile

from next_jax.execution.isolation import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_REC, mount

MS_RDONLY, MS_REMOUNT, MS_BIND, MS_MOVE = 1, 32, 4096, 8192

# Third-party packages a candidate (or a test) may import; everything else in site-packages stays invisible.
DEFAULT_PACKAGES = ("numpy", "scipy")
_DEVICES = ("null", "zero", "random", "urandom")


def _site_dirs() -> list[str]:
    return sorted({p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p)})


def _bind(source: str, target: str, binds: list[str]) -> None:
    if os.path.islink(source):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.lexists(target):
            os.symlink(os.readlink(source), target)
        return
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    mount(source, target, None, MS_BIND | MS_REC)
    binds.append(target)


@dataclasses.dataclass(frozen=True)
class RootFS:
    path: str
    # Mounts that lie under /tmp (a venv in a checkout under /tmp): each child's private /tmp would cover them,
    # so a child parks each (recursively, with the site-packages overlay) at /.keep-N and moves it back on top.
    under_tmp: tuple[str, ...] = ()


def build(packages: tuple[str, ...] = DEFAULT_PACKAGES) -> RootFS:
    """Create the tree under a fresh directory (call inside a private mount namespace)."""
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    root = tempfile.mkdtemp(prefix="next-jax-root-")
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    binds: list[str] = []
    prefixes = sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix})
    for path in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/etc/ld.so.cache", "/etc/localtime", *prefixes):
        if os.path.lexists(path) and not os.path.lexists(root + path):
            _bind(path, root + path, binds)
    for site in _site_dirs():
        target = root + site
        os.makedirs(target, exist_ok=True)
        # Hide the whole directory (it may lie inside a prefix bound above), then show allowed packages only.
        mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=755")
        binds.append(target)
        for name in packages:
            for entry in (name, f"{name}.libs", f"{name}.py"):
                if os.path.exists(os.path.join(site, entry)):
                    _bind(os.path.join(site, entry), os.path.join(target, entry), binds)
    for device in _DEVICES:
        _bind(f"/dev/{device}", f"{root}/dev/{device}", binds)
    for directory in ("proc", "tmp"):
        os.makedirs(f"{root}/{directory}", exist_ok=True)
    mounts = sorted({t[len(root):] for t in binds if t.startswith(f"{root}/tmp/")})
    under_tmp = tuple(m for m in mounts if not any(m.startswith(o + "/") for o in mounts))
    for index in range(len(under_tmp)):
        os.makedirs(f"{root}/.keep-{index}")
    for target in binds:
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | (0 if target.startswith(f"{root}/dev") else MS_NODEV)
        mount("none", target, None, flags)
    mount("none", root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    return RootFS(root, under_tmp)


def enter(rootfs: RootFS, tmp_bytes: int, with_proc: bool) -> str:
    """In a child's own mount namespace: private /tmp and /proc, then chroot. Returns the work dir."""
    root = rootfs.path
    for index, path in enumerate(rootfs.under_tmp):
        mount(root + path, f"{root}/.keep-{index}", None, MS_BIND | MS_REC)
    mount("tmpfs", f"{root}/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_bytes},mode=1777")
    for index, path in enumerate(rootfs.under_tmp):
        os.makedirs(root + path, mode=0o755, exist_ok=True)
        mount(f"{root}/.keep-{index}", root + path, None, MS_MOVE)
    if with_proc:
        mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chroot(root)
    os.chdir("/")
    return "/tmp"  # the private tmpfs itself: tempfile and programs that write to /tmp just work


def remove(rootfs: RootFS) -> None:
    """Detach the tree and delete its (host-visible, empty) mount point."""
    import ctypes

    root = rootfs.path
    ctypes.CDLL(None, use_errno=True).umount2(root.encode(), 2)  # MNT_DETACH
    try:
        os.rmdir(root)
    except OSError:
        pass
