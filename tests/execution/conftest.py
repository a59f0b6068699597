"""Shared fixtures for the verification-pool tests: one session pool, host sentinels, sandbox checks.

The pool's slot ``i`` runs its candidate as uid ``UID_BASE + 2i`` and its judge as ``UID_BASE + 2i + 1``, so "nothing
left running" means: no process on this host has a candidate uid (in any state, zombies included). The judge is
kept between candidates by design.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Iterator

import pytest
from sandbox_checks import HONEST, TIMEOUT, UID_BASE, WORKERS, SandboxChecks  # noqa: F401  (re-exported)

from next_jax.execution import tracer
from next_jax.execution.pool import VerificationPool

REPO = pathlib.Path(__file__).resolve().parents[2]
SENTINEL_TEXT = "RT" + "5e17" * 8  # the shape a side-channel probe hunts for: RT + 32 hex digits


@pytest.fixture(scope="session")
def pool() -> Iterator[VerificationPool]:
    with VerificationPool(workers=WORKERS, timeout=TIMEOUT, uid_base=UID_BASE) as p:
        yield p


@pytest.fixture(scope="session")
def checks() -> SandboxChecks:
    return SandboxChecks()


@pytest.fixture(scope="session")
def data_root() -> pathlib.Path:
    """The shared public datasets (read-only); the tests that need them skip when they are absent."""
    root = pathlib.Path(os.environ.get("NEXT_JAX_DATA", REPO.parent / "shared" / "data"))
    if not root.is_dir():
        pytest.skip(f"data root {root} not present (set NEXT_JAX_DATA)")
    return root


@pytest.fixture(scope="session")
def host_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, pathlib.Path]]:
    """World-writable host directories holding a secret file, so only the sandbox (not file modes) guards them.

    One lives in the repository (``.pytest-tmp``), one in the host's /tmp; the way to both is open to any uid.
    """
    base = REPO / ".pytest-tmp"
    created_base = not base.exists()
    base.mkdir(exist_ok=True)
    dirs = {"repo": base / f"sentinel-{os.getpid()}", "tmp": tmp_path_factory.mktemp("sentinel")}
    for d in dirs.values():
        d.mkdir(exist_ok=True)
        (d / "keep").mkdir()
        (d / "secret.txt").write_text(SENTINEL_TEXT)
        for path, mode in ((d, 0o777), (d / "keep", 0o777), (d / "secret.txt", 0o666)):
            os.chmod(path, mode)
    for parent in (base, *dirs["tmp"].parents):
        if str(parent) in ("/", "/tmp"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o755)
    yield dirs
    shutil.rmtree(dirs["repo"], ignore_errors=True)
    if created_base:
        try:
            base.rmdir()
        except OSError:  # someone else put something there meanwhile
            pass


SIDE_CHANNEL_PROBE = r'''
import ctypes, gc, inspect, os, re, select, socket, sys, time

PATTERN = re.compile(rb"RT[0-9a-f]{32}")
KNOWN = {b"$sentinel"}
ROOTS = ["/tmp", "/var/tmp", "/dev/shm", "/run", "/work", "/root", "/home", "/farm", "/etc", "/mnt", "/srv",
         "/opt", "/tmp/work", sys.prefix, sys.base_prefix] + $extra_paths
_found = None


def _hit(data):
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    for m in PATTERN.findall(data or b""):
        if m not in KNOWN:
            return m.decode()
    return None


def _frames():
    frame = sys._getframe()
    while frame is not None:
        for scope in (frame.f_locals, frame.f_globals):
            for value in list(scope.values()):
                yield repr(value)[:1 << 20]
        frame = frame.f_back
    for info in inspect.stack():
        yield repr(info.frame.f_locals)[:1 << 20]


def _gc():
    for obj in gc.get_objects():
        if type(obj) is dict:
            items = list(obj.items())
            yield " ".join(str(x) for kv in items for x in kv if type(x) in (str, bytes))
        elif type(obj) in (list, tuple):
            yield " ".join(str(x) for x in obj if type(x) in (str, bytes))


def _pids():
    try:
        listed = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:  # /proc may be unlistable: guess
        listed = []
    return ["self"] + sorted(set(listed) | {str(i) for i in range(1, 64)}) + ["$host_pid", "$host_ppid"]


def _proc():
    for pid in _pids():
        for name in ("cmdline", "environ"):
            try:
                yield open(f"/proc/{pid}/{name}", "rb").read()
            except OSError:
                pass
        try:
            maps = open(f"/proc/{pid}/maps").read().splitlines()
            mem = open(f"/proc/{pid}/mem", "rb", buffering=0)
        except OSError:
            continue
        for line in maps:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if "r" in line.split()[1] and hi - lo <= (64 << 20):
                try:
                    mem.seek(lo)
                    yield mem.read(hi - lo)
                except (OSError, OverflowError, ValueError):
                    pass


def _fds():
    for fd in range(64):
        try:
            if fd == 3:  # our own channel: peek only, through a duplicate we close again
                s = socket.socket(fileno=os.dup(fd))
                try:
                    yield s.recv(1 << 16, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                finally:
                    s.close()
            else:
                poller = select.poll()
                poller.register(fd, select.POLLIN)
                if poller.poll(0):
                    yield os.read(fd, 1 << 16)
        except (OSError, ValueError):
            pass


def _files(deadline):
    seen = 0
    for root in ROOTS:
        for dirpath, dirnames, filenames in os.walk(root):
            if dirpath.startswith(("/proc", "/sys")) or time.monotonic() > deadline:
                dirnames[:] = []
                continue
            for name in filenames:
                seen += 1
                if seen > 3000 or time.monotonic() > deadline:
                    return
                try:
                    with open(os.path.join(dirpath, name), "rb") as f:
                        yield f.read(4 << 20)
                except OSError:
                    pass


def _sockets():
    try:
        lines = open("/proc/net/unix").read().splitlines()[1:]
    except OSError:
        return
    for line in lines:
        parts = line.split()
        if len(parts) >= 8:
            path = parts[7].replace("@", "\0", 1)
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET):
                try:
                    s = socket.socket(socket.AF_UNIX, kind)
                    s.settimeout(0.2)
                    s.connect(path)
                    yield s.recv(1 << 16)
                except OSError:
                    pass


def _sysv_and_ptrace():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    try:
        ids = [int(line.split()[1]) for line in open("/proc/sysvipc/shm").read().splitlines()[1:]]
    except OSError:
        ids = []
    for shmid in ids + list(range(0, 64)):
        addr = libc.shmat(shmid, None, 0o10000)  # SHM_RDONLY
        if addr not in (None, ctypes.c_void_p(-1).value):
            yield ctypes.string_at(addr, 1 << 16)
    for pid in [int(p) for p in _pids() if p.isdigit()]:
        if pid != os.getpid() and libc.ptrace(16, pid, None, None) == 0:  # PTRACE_ATTACH
            yield b"ATTACHED %d" % pid


def probe():
    global _found
    if _found is not None:
        return _found
    deadline = time.monotonic() + 1.5
    sources = [("frames", _frames()), ("gc", _gc()), ("environ", iter([repr(dict(os.environ)), repr(sys.argv)])),
               ("fds", _fds()), ("sockets", _sockets()), ("sysv/ptrace", _sysv_and_ptrace()), ("proc", _proc()),
               ("files", _files(deadline + 0.5))]
    tried = []
    for name, chunks in sources:
        count = 0
        for chunk in chunks:
            count += 1
            hit = _hit(chunk)
            if hit:
                _found = hit
                return hit
            if isinstance(chunk, bytes) and chunk.startswith(b"ATTACHED"):
                tried.append(chunk.decode())
        tried.append(f"{name}:{count}")
    _found = "nothing found (" + ", ".join(tried) + ")"
    return _found
'''


@pytest.fixture(scope="session")
def side_channel_probe(host_sentinel) -> str:
    """A candidate whose ``probe()`` returns any ``RT<32 hex>`` token it can find outside its own program text.

    Template fields: ``$extra_paths`` (a list literal of more places to search), ``$host_pid``, ``$host_ppid``.
    """
    return SIDE_CHANNEL_PROBE.replace("$sentinel", SENTINEL_TEXT)


@pytest.fixture(params=tracer.IMPLEMENTATIONS)
def each_tracer_implementation(request, monkeypatch) -> str:
    """Runs a test against each tracer recorder built on this machine (C and pure Python) as the default."""
    monkeypatch.setattr(tracer, "_DEFAULT", request.param)
    return request.param
