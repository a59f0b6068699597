"""Per-slot control groups: one memory and process budget for all processes of a sandboxed child.

rlimits bound each process; a candidate that forks 16 children could still hold 16x its address-space limit. A
cgroup caps the sum. cgroup v1 (the ``memory`` hierarchy) and v2 (unified: memory and pids) are supported; where
neither is writable the pool runs without and logs it. On v1 the ``pids`` hierarchy is left out: each slot's
processes run as a uid of their own, so ``RLIMIT_NPROC`` already bounds them, and joining a second hierarchy would
double the cost of moving every child into its group.
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger(__name__)


def _own_paths() -> dict[str, str]:
    """Controller (or '' for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    paths = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
    return paths


class SlotCgroup:
    """A cgroup (per controller) that sandboxed children join; removed on :meth:`close`."""

    def __init__(self, name: str, memory_bytes: int, processes: int) -> None:
        self.dirs: list[str] = []
        self.version = ""
        own = _own_paths()
        try:
            if os.path.isdir("/sys/fs/cgroup/memory"):
                memory = self._make(f"/sys/fs/cgroup/memory{own.get('memory', '/')}", name)
                self._write(memory, "memory.limit_in_bytes", memory_bytes)
                if os.path.exists(os.path.join(memory, "memory.memsw.limit_in_bytes")):
                    self._write(memory, "memory.memsw.limit_in_bytes", memory_bytes)
                self.version = "v1"
            elif os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
                group = self._make(f"/sys/fs/cgroup{own.get('', '/')}", name)
                self._write(group, "memory.max", memory_bytes)
                self._write(group, "memory.swap.max", 0)
                self._write(group, "pids.max", processes)
                self.version = "v2"
        except OSError as e:
            log.warning("cgroup limits unavailable (%s); per-process rlimits only", e)
            self.close()
            self.version = ""

    def _make(self, parent: str, name: str) -> str:
        path = os.path.join(parent, name)
        os.makedirs(path, exist_ok=True)
        self.dirs.append(path)
        return path

    @staticmethod
    def _write(directory: str, key: str, value: int) -> None:
        with open(os.path.join(directory, key), "w") as f:
            f.write(str(value))

    @property
    def active(self) -> bool:
        return bool(self.version)

    @property
    def procs_files(self) -> list[str]:
        """Files a process writes its pid to in order to join (its children inherit the group)."""
        return [os.path.join(d, "cgroup.procs") for d in self.dirs] if self.active else []

    def oom_kills(self) -> int:
        """How many processes the kernel killed for exceeding this group's memory so far."""
        name = "memory.oom_control" if self.version == "v1" else "memory.events"
        for directory in self.dirs:
            try:
                with open(os.path.join(directory, name)) as f:
                    for line in f:
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            return int(value)
            except OSError:
                continue
        return 0

    def close(self) -> None:
        for directory in reversed(self.dirs):
            for _ in range(50):  # members may still be exiting
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
        self.dirs = []
