"""Trusted side of the sandbox: worker templates (zygotes) and the confined children they fork.

A :class:`Zygote` is a fresh interpreter (``python -s -P -m next_jax.execution.zygote``) that holds no test data.
:meth:`Zygote.spawn` hands it four descriptors and gets back a :class:`Child`: a confined process we talk to over a
framed channel, whose output is drained to a cap, and which is killed from outside (with its whole pid namespace)
by closing its kill pipe.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from next_jax.execution.cgroups import SlotCgroup
from next_jax.execution.channel import Channel, OutputBuffer
from next_jax.execution.isolation import Limits
from next_jax.execution.rootfs import DEFAULT_PACKAGES

log = logging.getLogger(__name__)


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the candidate)."""


class Child:
    """A confined process: its channel, captured output (drained while its channel is waited on), pid and exit
    report."""

    def __init__(self, channel: Channel, status_fd: int, kill_fd: int, workdir: str | None,
                 swept_by_uid: bool = False) -> None:
        assert channel.output is not None
        self.channel, self.output = channel, channel.output
        self._status, self._kill = status_fd, kill_fd
        self._status_buf = b""
        self.workdir = workdir
        # Without a pid namespace the zygote ends a child by killing every process of its uid once it is reaped;
        # a next child of the same uid must not start before that sweep, or the sweep takes it too.
        self.swept_by_uid = swept_by_uid
        self.pid: int | None = None
        self.exit: dict | None = None
        self._kill_lock = threading.Lock()  # kill() may come from another thread (a stream's cancel)

    def _status_line(self, deadline: float) -> dict | None:
        while b"\n" not in self._status_buf:
            if self._status < 0:  # released without waiting (close_async): the report is gone
                return None
            left = deadline - time.monotonic()
            poller = select.poll()
            poller.register(self._status, select.POLLIN | select.POLLHUP)
            if left <= 0 or not poller.poll(left * 1000):
                return None
            chunk = os.read(self._status, 4096)
            if not chunk:
                return None
            self._status_buf += chunk
        line, self._status_buf = self._status_buf.split(b"\n", 1)
        return json.loads(line)

    def wait_started(self, deadline: float) -> None:
        report = self._status_line(deadline)
        if report is None or "pid" not in report:
            self.kill()
            raise SandboxError(f"child did not start: {report}")
        self.pid = report["pid"]

    def kill(self) -> None:
        """SIGKILL the child and everything in its pid namespace (the zygote does it on kill-pipe EOF).

        Safe from any thread: the descriptor is closed once (a second close could hit a reused descriptor)."""
        with self._kill_lock:
            fd, self._kill = self._kill, -1
        if fd >= 0:
            os.close(fd)

    @property
    def killed(self) -> bool:
        """Whether ``kill`` was called (from any thread)."""
        return self._kill < 0

    def wait_exit(self, timeout: float = 5.0) -> dict:
        """Kill (idempotent) and collect the zygote's exit report."""
        self.kill()
        if self.exit is None:
            self.exit = self._status_line(time.monotonic() + timeout) or {"exit": None, "lost": True}
        return self.exit

    def close(self) -> None:
        """Kill, wait for the exit report, release everything."""
        self.wait_exit()
        self._release()

    def _release(self) -> None:
        self.channel.close()
        self.output.close()
        if self._status >= 0:
            os.close(self._status)
            self._status = -1
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def close_async(self) -> None:
        """Kill now and release without waiting: the zygote reaps the child (its exit report goes unread).

        A host work dir (no mount namespace) may only be removed once the child is gone: that waits in the
        background. A child swept by uid is waited for here: its exit report comes after the sweep, so the next
        child of its uid is spawned only once the sweep is over."""
        if self.swept_by_uid:
            self.close()
            return
        self.kill()
        if self.workdir:
            _REAPER.submit(self.close)
        else:
            self._release()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close_async()


_REAPER = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="sandbox-reaper")


@dataclasses.dataclass(frozen=True)
class SpawnConfig:
    limits: Limits
    uid: int
    gid: int
    output_cap: int = 64 << 10
    max_frame: int = 16 << 20
    seed: int = 0
    cgroup: SlotCgroup | None = None  # joined by the child before it runs its role


class Zygote:
    """One long-lived worker template (a fresh interpreter that forks confined children)."""

    def __init__(self, packages: tuple[str, ...] = DEFAULT_PACKAGES, start_timeout: float = 60.0,
                 namespaces: tuple[str, ...] | None = None) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # A clean environment (not -I: it would ignore PYTHONHASHSEED); the package root is the only extra path.
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {"PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "PYTHONPATH": package_root}
        self.process = subprocess.Popen(
            [sys.executable, "-s", "-P", "-m", "next_jax.execution.zygote", str(child.fileno()), ",".join(packages),
             "all" if namespaces is None else ",".join(namespaces)],
            pass_fds=[child.fileno()], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            start_new_session=True)
        child.close()
        self.control = parent
        self._lock = threading.Lock()
        hello = self._reply(start_timeout)
        if not hello.get("ready"):
            raise SandboxError(f"zygote failed to start: {hello}")
        self.capabilities: dict = hello

    def _reply(self, timeout: float) -> dict:
        self.control.settimeout(timeout)
        try:
            data = self.control.recv(1 << 16)
        except (TimeoutError, OSError) as e:
            raise SandboxError(f"zygote did not answer: {e}") from None
        if not data:
            raise SandboxError("zygote exited")
        return json.loads(data)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def spawn(self, role: str, config: SpawnConfig, timeout: float = 10.0) -> Child:
        """Fork a confined child running ``role``; returns once its pid is known."""
        deadline = time.monotonic() + timeout
        comm_parent, comm_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_r, out_w = os.pipe()
        status_r, status_w = os.pipe()
        kill_r, kill_w = os.pipe()
        workdir = None
        if "mount" not in self.capabilities.get("namespaces", []):
            workdir = tempfile.mkdtemp(prefix="next-jax-sandbox-")
        request = {"role": role, "uid": config.uid, "gid": config.gid, "seed": config.seed,
                   "limits": dataclasses.asdict(config.limits), "workdir": workdir,
                   "cgroups": config.cgroup.procs_files if config.cgroup else []}
        try:
            with self._lock:
                socket.send_fds(self.control, [json.dumps(request).encode()],
                                [comm_child.fileno(), out_w, status_w, kill_r])
                reply = self._reply(timeout)
        finally:
            for fd in (comm_child.detach(), out_w, status_w, kill_r):
                os.close(fd)
        if "spawned" not in reply:
            for fd in (out_r, status_r, kill_w):
                os.close(fd)
            comm_parent.close()
            raise SandboxError(f"spawn refused: {reply}")
        child = Child(Channel(comm_parent.detach(), config.max_frame, OutputBuffer(out_r, config.output_cap)),
                      status_r, kill_w, workdir, swept_by_uid="pid" not in self.capabilities.get("namespaces", []))
        try:
            child.wait_started(deadline)
            try:
                ready = child.channel.recv(deadline)
            except (OSError, EOFError, ValueError) as e:
                ready = {"error": f"{type(e).__name__} {e}"}
            if ready != {"ready": True}:
                child.kill()
                child.output.collect(timeout=2.0)
                raise SandboxError(f"child set-up failed: {ready}: {child.output.text()[-2000:]}")
        except SandboxError:
            child.close()
            raise
        return child

    def close(self) -> None:
        self.control.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
