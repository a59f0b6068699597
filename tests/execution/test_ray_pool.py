"""The Ray backend: verdicts equal the local pool's, attacks stay contained, a dying actor loses no candidate.

One local Ray cluster of 2 CPUs for the module (started and shut down here); the shared pool has two actors of
one worker each. Actors are placed by node without holding Ray CPUs (the default), so pools of other tests fit
beside it; one test checks a pool that holds them.
"""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

ray = pytest.importorskip("ray", reason="Ray is optional: pip install -e '.[ray]' to test the Ray backend")

from sandbox_checks import HONEST, TIMEOUT, SandboxChecks  # noqa: E402
from test_adversarial import CASES, REPO, context, listener  # noqa: E402,F401  (fixtures reused as they are)

from next_jax.data.mutation import mutants  # noqa: E402
from next_jax.execution import verify as verify_cli  # noqa: E402
from next_jax.execution.backend import make_pool  # noqa: E402
from next_jax.execution.pool import VerificationPool  # noqa: E402
from next_jax.execution.ray_pool import RayVerificationPool, plan_actors  # noqa: E402
from next_jax.execution.verdict import Candidate  # noqa: E402

MBPP_TASKS = 40  # references + one mutant each: enough variety (pass, fail, errors) at a few seconds per side


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray cluster with 2 CPUs for this module. (Ray's servers listen on every interface and refuse a
    loopback node address; the cluster requires its token and lives only as long as this module.)"""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_pool(cluster) -> Iterator[RayVerificationPool]:
    with RayVerificationPool(timeout=TIMEOUT, cores_per_actor=1) as pool:
        yield pool


def _actor_checks(pool: RayVerificationPool) -> list[SandboxChecks]:
    return [SandboxChecks(workers=a["workers"], uid_base=a["uid_base"]) for a in pool.actors]


# -- no cluster, or a pool of their own ---------------------------------------------------------------------

def test_importing_next_jax_does_not_import_ray():
    code = ("import sys, next_jax, next_jax.execution.backend, next_jax.execution.ray_pool, "
            "next_jax.execution.verify; print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


def test_actor_plan():
    nodes = [{"NodeID": "b", "Alive": True, "Resources": {"CPU": 8.0}},
             {"NodeID": "a", "Alive": True, "Resources": {"CPU": 4.0}},
             {"NodeID": "c", "Alive": False, "Resources": {"CPU": 64.0}},
             {"NodeID": "d", "Alive": True, "Resources": {}}]
    assert plan_actors(nodes) == [("a", 4), ("b", 8)]
    assert plan_actors(nodes, cores_per_actor=4) == [("a", 4), ("b", 4), ("b", 4)]
    assert plan_actors(nodes, cores_per_actor=4, num_actors=2) == [("a", 4), ("b", 4)]
    assert plan_actors(nodes, cores_per_actor=16) == [("a", 4), ("b", 8)]


def test_backend_is_chosen_in_gin(cluster):
    import gin

    with pytest.raises(ValueError, match="unknown pool backend"):
        make_pool(1, 1.0, backend="dask")
    gin.clear_config()
    try:
        gin.parse_config(["pool_backend.backend = 'ray'", "pool_backend.num_actors = 1"])
        with make_pool(workers=2, timeout=TIMEOUT) as pool:
            assert isinstance(pool, RayVerificationPool)
            assert [a["workers"] for a in pool.actors] == [2]  # one actor per node, all its CPUs
            assert [v.status for v in pool.verify([HONEST] * 3)] == ["pass"] * 3
    finally:
        gin.clear_config()
    assert ray.is_initialized()  # a pool never shuts down a cluster it did not start


def test_verify_cli_backend_ray_writes_what_the_local_pool_writes(cluster, tmp_path):
    records = [{"id": "ok", "code": HONEST.code, "tests": list(HONEST.tests)},
               {"id": "wrong", "code": "def add(a, b):\n    return a - b\n", "tests": list(HONEST.tests)},
               {"id": "no tests", "code": "x = 1\n", "tests": []}]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in records) + "\nnot json\n")
    outputs = {}
    for backend in ("local", "ray"):
        out = tmp_path / f"{backend}.jsonl"
        assert verify_cli.main([str(src), str(out), "--workers", "2", "--timeout", str(TIMEOUT),
                                "--backend", backend, "--cores_per_actor", "1"]) == 0
        outputs[backend] = out.read_text()
    assert outputs["ray"] == outputs["local"]
    assert [json.loads(line)["status"] for line in outputs["ray"].splitlines()] == [
        "pass", "fail", "invalid_record", "invalid_record"]


# -- the shared two-actor pool -------------------------------------------------------------------------------

def test_mbpp_references_and_mutants_match_the_local_pool(ray_pool, pool, data_root):
    with open(data_root / "mbpp" / "mbpp.jsonl") as f:
        records = [json.loads(line) for line in f][:MBPP_TASKS]
    rng = random.Random(0)
    candidates = []
    for r in records:
        tests, setup = tuple(r["test_list"]), r["test_setup_code"]
        candidates.append(Candidate(f"{r['task_id']}/ref", r["code"], tests, setup))
        candidates += [Candidate(f"{r['task_id']}/mut", m.code, tests, setup) for m in mutants(r["code"], rng, 1)]
    local = pool.verify(candidates, details=True)
    remote = ray_pool.verify(candidates, details=True)
    assert all(v.ok for v in remote if v.id.endswith("/ref"))
    assert sum(not v.ok for v in remote) > MBPP_TASKS // 2  # the mutants mostly fail: both outcomes compared
    assert remote == local, [(a, b) for a, b in zip(remote, local, strict=True) if a != b][:3]
    for checks in _actor_checks(ray_pool):
        checks.nothing_left_running()


def test_trace_and_evaluate_match_the_local_pool(ray_pool, pool):
    code = "def f(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total\n"
    assert ray_pool.trace(code, "f([1, 2])") == pool.trace(code, "f([1, 2])")
    assert ray_pool.evaluate(code, ["f([1])", "f(None)"]) == pool.evaluate(code, ["f([1])", "f(None)"])
    with pytest.raises(SyntaxError):
        ray_pool.trace("def f(:\n", "f()")


def test_adversarial_cases_are_contained_through_ray(ray_pool, pool, checks, host_sentinel, listener, context,  # noqa: F811
                                                     side_channel_probe):
    token = "RT" + os.urandom(16).hex()
    probe = Candidate("side_channel_probe", string.Template(side_channel_probe).substitute(
        context, extra_paths=repr([str(context["repo_dir"]), str(context["data_root"]), str(REPO)])),
        (f"assert probe() == {token!r}", "assert probe() == EXPECTED"), f"EXPECTED = {token!r}\n")
    candidates = [Candidate(c.name, string.Template(c.code).substitute(context), c.tests) for c in CASES] + [probe]
    allowed = {c.name: c.statuses for c in CASES} | {"side_channel_probe": ("fail",)}
    before = checks.sentinel_state(host_sentinel)
    remote = ray_pool.verify(candidates, details=True)
    passed = [v.id for v in remote if v.ok]
    assert not passed, f"attacks that passed through Ray: {passed}"
    wrong = [(v.id, v.status) for v in remote if v.status not in allowed[v.id]]
    assert not wrong, wrong
    assert remote[-1].details[0]["got"].startswith("'nothing found"), remote[-1].details[0]
    for actor_checks in _actor_checks(ray_pool):
        actor_checks.nothing_left_running()
    assert checks.sentinel_state(host_sentinel) == before
    assert not os.path.exists("/tmp/pwned")
    assert listener.contacts == []
    local = pool.verify(candidates, details=True)
    # Where a case allows one verdict the two pools must agree exactly; the others (a fork bomb may end in
    # `memory` or `runtime_error` depending on which limit it meets first) must both be contained.
    single = {c.name for c in CASES if len(c.statuses) == 1} | {"side_channel_probe"}
    differ = [(a.id, a.status, b.status) for a, b in zip(remote, local, strict=True)
              if a.id in single and a.status != b.status]
    assert not differ, differ
    assert [v.status for v in ray_pool.verify([HONEST] * 2)] == ["pass", "pass"]


def test_a_cancelled_stream_kills_its_candidates_on_the_actors(ray_pool):
    slow = Candidate("slow", "import time\ndef f():\n    time.sleep(30)\n    return 7\n", ("assert f() == 7",),
                     timeout=30)
    actor_checks = _actor_checks(ray_pool)
    start = time.monotonic()
    with pytest.raises(InterruptedError), ray_pool.stream(max_in_flight=2) as stream:
        stream.submit(slow, "a")
        stream.submit(slow, "b")
        while not all(c.processes() for c in actor_checks) and time.monotonic() - start < 15:
            time.sleep(0.05)
        assert all(c.processes() for c in actor_checks), (
            [c.processes() for c in actor_checks], ray_pool.actors, ray_pool.stats,
            [(j.candidate.id, a.info) for j, a, _ in ray_pool._in_flight.values()],
            subprocess.run("ps -eo pid,ppid,uid,stat,comm --forest", shell=True, capture_output=True,
                           text=True).stdout[-3000:])
        raise InterruptedError  # leaving the stream by an exception cancels what is running
    for c in actor_checks:
        c.nothing_left_running(grace=5.0)
    assert time.monotonic() - start < 20
    assert [v.status for v in ray_pool.verify([HONEST] * 2)] == ["pass", "pass"]


def test_killing_an_actor_mid_batch_loses_no_candidate(ray_pool):
    batch = [Candidate(f"k{i}", "import time\ndef f():\n    time.sleep(0.2)\n    return 7\n", ("assert f() == 7",))
             for i in range(24)]
    before = dict(ray_pool.stats)
    victim = ray_pool.actors[0]
    futures = [ray_pool.submit(c) for c in batch]
    while sum(f.done() for f in futures) < 3:  # both actors busy, some verdicts in
        time.sleep(0.02)
    ray.kill(victim["handle"])
    verdicts = [f.result(timeout=120) for f in futures]
    assert [v.id for v in verdicts] == [c.id for c in batch]
    assert [v.status for v in verdicts] == ["pass"] * len(batch), [v for v in verdicts if not v.ok]
    stats = {k: ray_pool.stats[k] - before.get(k, 0) for k in ray_pool.stats}
    assert stats["actors_lost"] == 1 and stats["reruns"] >= 1, stats
    assert stats["dispatched"] == len(batch) + stats["reruns"], stats  # each re-run once, each verdict once
    SandboxChecks(victim["workers"], victim["uid_base"]).nothing_left_running(grace=5.0)
    deadline = time.monotonic() + 60
    while len(ray_pool.actors) < 2 and time.monotonic() < deadline:  # the replacement starts on the same node
        time.sleep(0.1)
    assert len(ray_pool.actors) == 2
    assert victim["pid"] not in {a["pid"] for a in ray_pool.actors}
    assert [v.status for v in ray_pool.verify([HONEST] * 4)] == ["pass"] * 4


def test_reserve_cpus_holds_the_actors_cpus(cluster):
    with RayVerificationPool(timeout=TIMEOUT, cores_per_actor=1, reserve_cpus=True) as pool:
        assert len(pool.actors) == 2
        assert ray.available_resources().get("CPU", 0) == 0
        assert [v.status for v in pool.verify([HONEST] * 2)] == ["pass", "pass"]
    deadline = time.monotonic() + 10
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.available_resources().get("CPU", 0) == 2


def test_local_backend_is_the_default():
    with make_pool(1, TIMEOUT) as pool:
        assert isinstance(pool, VerificationPool)
