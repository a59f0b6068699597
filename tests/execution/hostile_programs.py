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
