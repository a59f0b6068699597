"""A fabricated self-training run directory (the run-directory contract of DESIGN.md) for report and plot tests."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from next_jax.data.example import write_jsonl

HOSTILE = "</script><script>alert(1)</script>"
NON_ASCII = "Größe — 数组 ✓"
PROBLEMS = ("mbpp/11", "mbpp/12", "mbpp/13")
# Statuses per iteration, problem and sample index. Parse failures get the parse status as their verdict.
STATUSES = {
    1: {"mbpp/11": ["pass", "fail", "timeout", "parse_no_code"],
        "mbpp/12": ["pass", "pass", "runtime_error", "fail"],
        "mbpp/13": ["syntax_error", "fail", "fail", "memory"]},
    2: {"mbpp/11": ["pass", "pass", "pass", "fail"],
        "mbpp/12": ["fail", "parse_truncated", "pass", "sandbox_error"],
        "mbpp/13": ["pass", "timeout", "fail", "fail"]},
}


def _eval(rate: float, err: float, p1: float, p4: float) -> dict[str, Any]:
    return {"problems": 50, "greedy_fix_rate": rate, "greedy_fix_rate_stderr": err,
            "pass_at_k": {"1": p1, "4": p4}, "trace_share": 1.0, "an_extra_key": [1, 2]}


SUMMARY: dict[str, Any] = {
    "seed": 7, "config_name": "tiny_cpu", "best_iteration": 2,
    "base": _eval(0.20, 0.0566, 0.18, 0.35), "base_notrace": _eval(0.16, 0.0518, 0.15, 0.30),
    "control": _eval(0.24, 0.0604, 0.22, 0.40), "control_notrace": None,
    "iterations": [
        {"iteration": 1, "dev": _eval(0.30, 0.0648, 0.28, 0.50), "dev_notrace": _eval(0.22, 0.0586, 0.2, 0.41),
         "train": {"problems": 3, "samples": 12, "parsed": 11, "passed": 3, "kept": 3, "problems_solved": 2},
         "seconds": {"sample": 12.5, "verify": 3.25, "train": 40.0, "eval": 8.0},
         "sampler_wait_seconds": 0.75, "trace_share": 1.0,
         "minus_control": {"problems": 50, "greedy_fix_rate": 0.06, "stderr": 0.031}},
        {"iteration": 2, "dev": _eval(0.412, 0.013, 0.4, 0.62), "dev_notrace": None,
         "train": {"problems": 3, "samples": 12, "parsed": 11, "passed": 5, "kept": 5, "problems_solved": 3},
         "seconds": {"sample": 11.0, "verify": 3.0, "train": 41.5, "eval": 7.5},
         "sampler_wait_seconds": 0.5, "trace_share": 0.5, "future_field": "ignored"},
    ],
}


@dataclasses.dataclass(frozen=True)
class FakeRun:
    """The run directory and what was written into it. Tests reach it (and its constants) through the fixture:
    `from conftest import` would pick whichever of the suite's several conftest modules pytest loaded last."""

    HOSTILE: ClassVar[str] = HOSTILE
    NON_ASCII: ClassVar[str] = NON_ASCII
    path: Path
    summary: dict[str, Any]
    samples: list[dict[str, Any]]
    verdicts: list[dict[str, Any]]

    def count(self, status: str, iteration: int) -> int:
        return sum(v["status"] == status and v["iteration"] == iteration for v in self.verdicts)


def _prompt(eid: str) -> str:
    return (f"# Problem {eid}: sum a list ({NON_ASCII})\ndef total(xs):\n    total = 0  # (1) total=0\n"
            "    for x in xs:  # (2) x=4\n        total += x  # (3) total=4\n    return total + 1  # (4) __return__=5\n")


def _sample(k: int, eid: str, index: int, status: str) -> dict[str, Any]:
    parse_status = status if status.startswith("parse_") else "ok"
    rationale = f"Iteration {k}, sample {index}: the function adds one too many. {NON_ASCII}"
    code = "def total(xs):\n    return sum(xs)\n"
    if (k, eid, index) == (1, "mbpp/12", 0):  # hostile text in a passing sample of iteration 1
        rationale += f" {HOSTILE}"
        code = f"def total(xs):\n    '''{HOSTILE}'''\n    return sum(xs)\n"
    completion = f"{rationale}\n```python\n{code}```"
    if parse_status != "ok":
        rationale, code, completion = "", "", f"no code here {HOSTILE} <!-- {NON_ASCII}"
    return {"example_id": eid, "iteration": k, "index": index, "completion": completion,
            "parse_status": parse_status, "rationale": rationale, "code": code, "logprob": -3.5 - index}


def _verdict(k: int, eid: str, index: int, status: str) -> dict[str, Any]:
    total = 0 if status.startswith("parse_") else 3
    passed = 3 if status == "pass" else (1 if status == "fail" else 0)
    details = [{"test": f"assert total([{i}]) == {i}", "ok": i < passed} for i in range(total)]
    if status == "fail":
        details[-1]["error"] = f"AssertionError {HOSTILE}"
    return {"example_id": eid, "iteration": k, "index": index, "status": status, "passed": passed,
            "total": total, "details": details}


def write_fake_run(root: Path) -> FakeRun:
    """Two iterations, three problems, four samples each, in two shards; prompts; summary.json."""
    samples, verdicts = [], []
    for k, per_problem in STATUSES.items():
        d = root / f"iter_{k}"
        recs = [(eid, i, st) for eid, sts in per_problem.items() for i, st in enumerate(sts)]
        # Two shards per stage, with the same names for samples and verdicts (records interleaved by index).
        for shard in range(2):
            part = [r for j, r in enumerate(recs) if j % 2 == shard]
            name = f"samples-{shard:05d}-of-00002.jsonl.gz"
            s = [_sample(k, *r) for r in part]
            v = [_verdict(k, *r) for r in part]
            write_jsonl(d / "samples" / name, s)
            write_jsonl(d / "verdicts" / name, v)
            samples += s
            verdicts += v
        write_jsonl(d / "prompts.jsonl.gz",
                    [{"example_id": eid, "prompt": _prompt(eid), "traced": True} for eid in PROBLEMS])
        (d / "kept.jsonl").write_text("")
        (d / "metrics.json").write_text("{}")
    (root / "summary.json").write_text(json.dumps(SUMMARY, indent=1))
    (root / "state.json").write_text("{}")
    (root / "config.gin").write_text("# fake\n")
    return FakeRun(root, SUMMARY, samples, verdicts)


@pytest.fixture
def fake_run(tmp_path: Path) -> FakeRun:
    return write_fake_run(tmp_path / "run")
