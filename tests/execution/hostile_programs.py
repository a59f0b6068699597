"""Hostile candidate programs for the adversarial suite (sources only; test_adversarial.py runs them).

Some are string.Template sources: `$repo_dir`, `$data_root`, ... are filled in by the test.
"""

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
    {"op": "test", "index": 0, "result": {"ok": True}}, {"op": "done", "results": [{"ok": True}]}, {"gone": "x"},
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


PREDICT_JUDGE_RANDOMNESS = r'''
import random, string
def encode_cyclic(s):
    return s
def decode_cyclic(s):
    # Never looks at s: replays the judge's own draws (`str = ''.join(choice(letters) ...)`) from our RNG.
    return "".join(random.choice(string.ascii_lowercase) for _ in range(random.randint(10, 20)))
'''


# Two live siblings of one zygote: one listens on an abstract unix socket, the other tries to reach it.
SIBLING_LISTENER = """
import socket
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind("\\0next-jax-sibling-$tag")
server.listen(4)
"""

SIBLING_CONNECT = """
import os, signal, socket
def reach():
    out = []
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect("\\0next-jax-sibling-$tag")
        out.append("connected")
    except OSError as e:
        out.append(type(e).__name__)
    for sock_type in (socket.AF_INET, socket.AF_INET6):
        try:
            s = socket.socket(sock_type, socket.SOCK_DGRAM)
            s.sendto(b"x", ("127.0.0.1", 9) if sock_type == socket.AF_INET else ("::1", 9))
            out.append("udp sent")
        except OSError as e:
            out.append(type(e).__name__)
    return out
"""



# Reads every request the candidate server holds (frames and the heap) for anything the judge knows.
READ_REQUESTS = r'''
import gc, json, sys
def probe(x):
    seen = []
    for obj in gc.get_objects():
        if type(obj) is dict and "op" in obj:
            seen.append(json.dumps(obj, default=repr))
    frame = sys._getframe()
    while frame is not None:
        for value in list(frame.f_locals.values()):
            if type(value) is dict:
                seen.append(json.dumps(value, default=repr))
        frame = frame.f_back
    return " ".join(seen)
'''
