"""Hostile candidate programs that try to get out of the sandbox: processes, files, disk, network, sockets.

Templates (`string.Template`): `$repo_dir`, `$tmp_dir`, `$data_root`, ports and pids come from the tests.
"""

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
