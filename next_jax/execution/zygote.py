"""Worker template: a fresh interpreter that pre-imports what candidates use, then forks sandboxed children.

Started by the pool as ``python -s -P -m next_jax.execution.zygote FD`` with a fixed hash seed. It never sees test
data: a spawn request carries only the role, the uid and the limits, plus four descriptors (SCM_RIGHTS). The
program and the calls reach the child over its own channel after the child is confined.

Per spawn, the zygote forks a *monitor* M that enters new namespaces, then forks the child C (pid 1 of a new pid
namespace when available). C confines itself (mounts, rlimits, Landlock, unprivileged uid) and runs its role.
M stays outside: it reports C's pid and exit status on the status pipe, and SIGKILLs C (and with it the whole pid
namespace) as soon as the kill pipe is written to or closed. C never holds the status or kill pipe.
"""

from __future__ import annotations

# Pre-imported so that forked children need not read the disk for common candidate imports.
import bisect  # noqa: F401
import collections  # noqa: F401
import copy  # noqa: F401
import datetime  # noqa: F401
import decimal  # noqa: F401
import fractions  # noqa: F401
import functools  # noqa: F401
import gc
import hashlib  # noqa: F401
import heapq  # noqa: F401
import io
import itertools  # noqa: F401
import json
import math  # noqa: F401
import operator  # noqa: F401
import os
import re  # noqa: F401
import select
import signal
import socket
import statistics  # noqa: F401
import string  # noqa: F401
import sys
import tempfile
import typing  # noqa: F401

from next_jax.execution import cgroups, isolation, judge, roles, rootfs, shapes, tracer  # noqa: F401 (pre-imported)

SPAWN_FDS = 4  # comm socket, output pipe (w), status pipe (w), kill pipe (r)


def main(control_fd: int) -> None:
    caps = isolation.probe()
    if os.environ.get("NEXT_JAX_NS_HACK"):
        import dataclasses
        caps = dataclasses.replace(caps, namespaces=tuple(os.environ["NEXT_JAX_NS_HACK"].split(",")))
    root = None
    if "mount" in caps.namespaces:  # the minimal root lives in this zygote's own mount namespace
        isolation.unshare(isolation.CLONE_NEWNS)
        root = rootfs.build(tuple(sys.argv[2].split(",")) if len(sys.argv) > 2 else rootfs.DEFAULT_PACKAGES)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # monitors are reaped automatically
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # No parent-death signal here: it fires when the *thread* that started us exits. We exit on control EOF.
    control = socket.socket(fileno=control_fd)
    _send(control, {"ready": True, "capabilities": caps.describe(), "namespaces": list(caps.namespaces),
                    "landlock_abi": caps.landlock_abi, "uid_drop": caps.can_drop_uid})
    # Forked children touch (and so copy) every page the collector walks; freezing the pre-imported heap keeps
    # those pages shared, which makes each fork much cheaper.
    gc.collect()
    gc.freeze()
    try:
        _serve(control, caps, root)
    finally:
        if root:
            rootfs.remove(root)


def _serve(control: socket.socket, caps: isolation.Capabilities, root: rootfs.RootFS | None) -> None:
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(control, 1 << 16, SPAWN_FDS)
        except OSError:
            return
        if not msg:
            return  # the pool closed the control socket
        request = json.loads(msg)
        if len(fds) != SPAWN_FDS:
            for fd in fds:
                os.close(fd)
            _send(control, {"error": "expected 4 descriptors"})
            continue
        pid = os.fork()
        if pid == 0:
            control.close()
            try:
                _monitor(request, caps, root, *fds)
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
        _send(control, {"monitor": pid})


def _send(sock: socket.socket, obj: dict) -> None:
    sock.sendall(json.dumps(obj).encode() + b"\n")


def _monitor(request: dict, caps: isolation.Capabilities, root: rootfs.RootFS | None, comm: int, out: int, status: int,
             kill: int) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    isolation.prctl(isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setsid()
    flags = 0
    for name in caps.namespaces:
        flags |= isolation.NAMESPACES[name]
    try:
        cgroups.join(request.get("cgroups", []))  # before the fork: the child and all it forks are inside
        if flags:
            isolation.unshare(flags)
    except OSError as e:
        _report(status, {"error": f"isolation failed: {e}"})
        return
    child = os.fork()
    if child == 0:
        os.close(status)
        os.close(kill)
        code = 70
        try:
            _child(request, caps, root, comm, out)
            code = 0
        except BaseException as e:  # the confinement failed: report on the channel if we still can
            try:
                os.write(2, f"sandbox set-up failed: {type(e).__name__}: {e}\n".encode())
            except OSError:
                pass
        os._exit(code)
    os.close(comm)
    os.close(out)
    _report(status, {"pid": child})
    pidfd = os.pidfd_open(child)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(kill, select.POLLIN | select.POLLHUP)
    killed = False
    while True:
        events = dict(poller.poll())
        if kill in events and not killed:
            os.kill(child, signal.SIGKILL)  # pid 1 of the namespace: the kernel kills everything in it
            killed = True
            poller.unregister(kill)
        if pidfd in events:
            break
    _, wstatus, usage = os.wait4(child, 0)
    if "pid" not in caps.namespaces:
        try:  # no pid namespace: take the child's process group with it
            os.killpg(child, signal.SIGKILL)
        except OSError:
            pass
    _report(status, {"exit": os.waitstatus_to_exitcode(wstatus), "killed": killed,
                     "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss})


def _report(fd: int, obj: dict) -> None:
    try:
        os.write(fd, json.dumps(obj).encode() + b"\n")
    except OSError:
        pass


def _child(request: dict, caps: isolation.Capabilities, root: rootfs.RootFS | None, comm: int, out: int) -> None:
    limits = isolation.Limits(**request["limits"])
    isolation.prctl(isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
    if "pid" not in caps.namespaces:
        os.setpgid(0, 0)
    if root:
        workdir = rootfs.enter(root, int(request["limits"]["tmp_bytes"]), with_proc="pid" in caps.namespaces)
    else:
        workdir = request["workdir"]
    os.makedirs(workdir, exist_ok=True)
    uid, gid = int(request["uid"]), int(request["gid"])
    if caps.can_drop_uid:
        os.chown(workdir, uid, gid)
    os.chmod(workdir, 0o700)
    os.chdir(workdir)
    # Descriptors: 0 = /dev/null, 1 and 2 = capped output pipe, 3 = channel; everything else closed.
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.dup2(comm, 3)
    os.closerange(4, 1 << 16)
    limits.apply()
    if caps.landlock_abi > 0:
        isolation.confine_filesystem(workdir)
    isolation.drop_privileges(uid, gid)
    os.environ.clear()
    os.environ.update({"HOME": workdir, "TMPDIR": workdir, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
                       "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    # Unbuffered: the child is SIGKILLed, never flushed, and its output is diagnostics only.
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="replace",
                                  write_through=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="replace",
                                  write_through=True)
    tempfile.tempdir = None  # computed in the zygote; recompute from TMPDIR
    roles.seed_random(request.get("seed", 0))
    os.write(3, b"\x00\x00\x00\x0f" + b'{"ready":true} ')  # one frame: confinement is complete
    roles.serve(request["role"], 3)


if __name__ == "__main__":
    main(int(sys.argv[1]))
