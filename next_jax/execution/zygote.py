"""Worker template: a fresh interpreter that pre-imports what candidates use, then forks sandboxed children.

Started by the pool as ``python -s -P -m next_jax.execution.zygote FD PACKAGES NAMESPACES`` with a fixed hash
seed (``NAMESPACES``: ``all``, or a comma list of those to use where the kernel allows them). It never sees test
data: a spawn request carries only the role, the uid and the limits, plus four descriptors (SCM_RIGHTS). The
program and the calls reach the child over its own channel after the child is confined.

Per spawn, the zygote forks the child C directly (pid 1 of a new pid namespace when available). C enters its own
mount/ipc/uts namespaces and confines itself (cgroups, mounts, rlimits, Landlock, unprivileged uid) before it
runs its role. The zygote stays outside, watching C's pidfd: it reports C's pid and exit status on the status pipe,
and SIGKILLs C (and with it the whole pid namespace) as soon as the kill pipe is written to or closed. C never holds
the status or kill pipe. One fork per child: a second (monitor) process per child cost as much again.
"""

from __future__ import annotations

# Pre-imported so that forked children need not read the disk for common candidate imports.
import bisect  # noqa: F401
import collections  # noqa: F401
import copy  # noqa: F401
import dataclasses
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

from next_jax.execution import isolation, judge, landlock, roles, rootfs, shapes, tracer  # noqa: F401 (pre-imported)

SPAWN_FDS = 4  # comm socket, output pipe (w), status pipe (w), kill pipe (r)


@dataclasses.dataclass
class _Tracked:
    """A live child, as the zygote watches it: its pidfd, and the status and kill pipes of its dispatcher."""

    pid: int
    pidfd: int
    status: int
    kill: int  # -1 once closed (the child was killed, or reaped first)
    uid: int


def main(control_fd: int) -> None:
    isolation.set_process_name("nj-zygote")
    caps = isolation.probe()
    if len(sys.argv) > 3 and sys.argv[3] != "all":  # the pool asked for a subset (e.g. to test degraded modes)
        wanted = set(sys.argv[3].split(","))
        caps = dataclasses.replace(caps, namespaces=tuple(n for n in caps.namespaces if n in wanted))
    root = None
    if "mount" in caps.namespaces:  # the minimal root lives in this zygote's own mount namespace
        isolation.unshare(isolation.CLONE_NEWNS)
        root = rootfs.build(tuple(p for p in sys.argv[2].split(",") if p) if len(sys.argv) > 2
                            else rootfs.DEFAULT_PACKAGES)
    per_child = caps.namespaces
    if "net" in caps.namespaces and caps.landlock_abi >= 6:
        # One empty network namespace (loopback down) for all of this zygote's children: creating and tearing
        # one down per child costs more than the rest of a spawn. What a shared one could still carry between
        # children (abstract unix sockets, signals) is closed by each child's own Landlock scope (ABI >= 6).
        isolation.unshare(isolation.CLONE_NEWNET)
        per_child = tuple(name for name in per_child if name != "net")
    rules = None
    if caps.landlock_abi > 0:
        rules = landlock.PreparedRules(isolation.shared_filesystem_rules(), caps.landlock_abi)
    if root:  # every child's work dir is the private tmpfs it mounts on /tmp
        os.environ.clear()
        os.environ.update(_child_environment("/tmp"))
    # Unbuffered: a child is SIGKILLed, never flushed, and its output is diagnostics only. Made here once; in a
    # child, descriptors 1 and 2 are its capped output pipe.
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="replace",
                                  write_through=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="replace",
                                  write_through=True)
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
        _Server(control, caps, per_child, root, rules).serve()
    finally:
        if root:
            rootfs.remove(root)


class _Server:
    """The zygote's event loop: spawn requests on the control socket, kill requests and child exits.

    The zygote forks each child itself and stays its parent, so no extra process per child is needed to report
    the child's exit and to kill it: a child's pidfd says when it exited (then ``wait4`` gives its status and
    resource use), and its kill pipe becoming readable or closed means "SIGKILL it now". Killing pid 1 of a pid
    namespace kills everything in it.
    """

    def __init__(self, control: socket.socket, caps: isolation.Capabilities, per_child: tuple[str, ...],
                 root: rootfs.RootFS | None, rules: landlock.PreparedRules | None) -> None:
        self.control, self.caps, self.root, self.rules = control, caps, root, rules
        self.flags = 0
        for name in per_child:
            self.flags |= isolation.NAMESPACES[name]
        # A pid namespace cannot be unshared by a child before it runs, so the zygote unshares it for its next
        # child only (``pid_for_children``) and then points that back at its own namespace.
        self.own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY) if self.flags & isolation.CLONE_NEWPID else -1
        self.poller = select.poll()
        self.poller.register(control, select.POLLIN)
        self.by_pidfd: dict[int, _Tracked] = {}
        self.by_kill: dict[int, _Tracked] = {}

    def serve(self) -> None:
        try:
            while True:
                # Every event is tied to its child before any is handled: handling one closes descriptors whose
                # numbers a spawn in the same batch may reuse, and a stale event must not reach the new child.
                owners = [(fd, self.by_kill.get(fd), self.by_pidfd.get(fd)) for fd, _ in self.poller.poll()]
                for fd, to_kill, to_reap in owners:
                    if fd == self.control.fileno():
                        if not self._request():
                            return
                    elif to_kill is not None and to_kill.kill == fd:
                        self._kill(to_kill)
                    elif to_reap is not None and to_reap.pidfd == fd:
                        self._reap(to_reap)
        finally:
            for tracked in list(self.by_pidfd.values()):
                self._kill(tracked)
                self._reap(tracked, block=True)

    def _request(self) -> bool:
        try:
            msg, fds, _, _ = socket.recv_fds(self.control, 1 << 16, SPAWN_FDS)
        except OSError:
            return False
        if not msg:
            return False  # the pool closed the control socket
        if len(fds) != SPAWN_FDS:
            for fd in fds:
                os.close(fd)
            _send(self.control, {"error": "expected 4 descriptors"})
            return True
        comm, out, status, kill = fds
        try:
            request = json.loads(msg)
            pid = self._fork(request, comm, out)
        except OSError as e:
            for fd in fds:
                os.close(fd)
            _send(self.control, {"error": f"fork failed: {e}"})
            return True
        os.close(comm)
        os.close(out)
        tracked = _Tracked(pid, os.pidfd_open(pid), status, kill, int(request["uid"]))
        self.by_pidfd[tracked.pidfd] = tracked
        self.by_kill[kill] = tracked
        self.poller.register(tracked.pidfd, select.POLLIN)
        self.poller.register(kill, select.POLLIN | select.POLLHUP)
        _report(status, {"pid": pid})
        _send(self.control, {"spawned": pid})
        return True

    def _fork(self, request: dict, comm: int, out: int) -> int:
        if self.own_pid_ns >= 0:
            isolation.unshare(isolation.CLONE_NEWPID)
        pid = -1
        try:
            pid = os.fork()
        finally:
            if self.own_pid_ns >= 0 and pid != 0:
                isolation.setns(self.own_pid_ns, isolation.CLONE_NEWPID)
        if pid == 0:
            code = 70
            try:
                _child(request, self.caps, self.flags, self.root, self.rules, comm, out)
                code = 0
            except BaseException as e:  # the confinement failed: say so on the output pipe if we still can
                try:
                    os.write(2, f"sandbox set-up failed: {type(e).__name__}: {e}\n".encode())
                except OSError:
                    pass
            os._exit(code)
        return pid

    def _kill(self, tracked: _Tracked) -> None:
        if tracked.kill < 0:
            return
        if tracked.pidfd >= 0:  # not reaped yet
            try:
                signal.pidfd_send_signal(tracked.pidfd, signal.SIGKILL)
            except OSError:
                pass  # already gone
        self.poller.unregister(tracked.kill)
        del self.by_kill[tracked.kill]
        os.close(tracked.kill)
        tracked.kill = -1

    def _reap(self, tracked: _Tracked, block: bool = False) -> None:
        pid, wstatus, usage = os.wait4(tracked.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return
        killed = tracked.kill < 0
        if "pid" not in self.caps.namespaces:
            # No pid namespace to take everything with it: kill the child's process group, then every process
            # left with its uid (a daemon may have left the group). The pool forks no spare child in this mode.
            try:
                os.killpg(tracked.pid, signal.SIGKILL)
            except OSError:
                pass
            if self.caps.can_drop_uid:
                _sweep_uid(tracked.uid)
        _report(tracked.status, {"exit": os.waitstatus_to_exitcode(wstatus), "killed": killed,
                                 "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss})
        if not killed:
            self.poller.unregister(tracked.kill)
            del self.by_kill[tracked.kill]
            os.close(tracked.kill)
            tracked.kill = -1
        self.poller.unregister(tracked.pidfd)
        del self.by_pidfd[tracked.pidfd]
        os.close(tracked.pidfd)
        tracked.pidfd = -1
        os.close(tracked.status)


def _sweep_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` (from a helper that becomes that uid: ``kill(-1)`` reaches exactly those)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)  # every process this uid may signal, except the caller
        except OSError:
            pass
        os._exit(0)
    os.waitpid(pid, 0)


def _send(sock: socket.socket, obj: dict) -> None:
    sock.sendall(json.dumps(obj).encode() + b"\n")


def _report(fd: int, obj: dict) -> None:
    try:
        os.write(fd, json.dumps(obj).encode() + b"\n")
    except OSError:
        pass


def _child_environment(workdir: str) -> dict[str, str]:
    return {"HOME": workdir, "TMPDIR": workdir, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _child(request: dict, caps: isolation.Capabilities, flags: int, root: rootfs.RootFS | None,
           rules: landlock.PreparedRules | None, comm: int, out: int) -> None:
    """In the forked child, still trusted: confine itself completely, then serve its role on the channel."""
    isolation.prctl(isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
    isolation.set_process_name(f"nj-{request['role']}")
    os.setsid()  # its own session and process group (the zygote kills the group when there is no pid namespace)
    isolation.join_cgroups(request.get("cgroups", []))  # before anything else runs: all it will fork is inside
    if flags & ~isolation.CLONE_NEWPID:
        isolation.unshare(flags & ~isolation.CLONE_NEWPID)
    limits = isolation.Limits(**request["limits"])
    if root:
        workdir = rootfs.enter(root, int(request["limits"]["tmp_bytes"]), with_proc="pid" in caps.namespaces)
    else:
        workdir = request["workdir"]
        os.makedirs(workdir, exist_ok=True)
        os.environ.clear()
        os.environ.update(_child_environment(workdir))
    uid, gid = int(request["uid"]), int(request["gid"])
    if caps.can_drop_uid:
        os.chown(workdir, uid, gid)
    os.chmod(workdir, 0o700)
    os.chdir(workdir)
    if rules is not None:
        isolation.confine_filesystem(workdir, rules)
    # Descriptors: 0 = /dev/null, 1 and 2 = capped output pipe, 3 = channel; everything else closed.
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.dup2(comm, 3)
    os.closerange(4, 1 << 16)
    limits.apply()
    isolation.drop_privileges(uid, gid)
    tempfile.tempdir = None  # recompute from TMPDIR if the zygote ever computed it
    roles.seed_random(request.get("seed", 0))
    os.write(3, b"\x00\x00\x00\x0f" + b'{"ready":true} ')  # one frame: confinement is complete
    roles.serve(request["role"], 3)


if __name__ == "__main__":
    main(int(sys.argv[1]))
