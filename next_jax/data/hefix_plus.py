"""HeFix+: the 164 HumanEvalFix Python bugs judged on EvalPlus HumanEval+ inputs.

Expected outputs are computed by running the canonical solution on every base and plus input inside the
sandbox (the pool's trusted `evaluate`), so the dataset is reproducible from the public files. Outputs are
compared as EvalPlus does: exact equality, except that floats (or sequences of floats) may differ by
`atol + 1e-7 * |expected|`, where an `atol` of 0 becomes 1e-6 for float outputs.

The reference solution stored is EvalPlus's canonical solution, which corrects a few HumanEval ones (e.g.
HumanEval/22 must not count bools as integers; HumanEval/55 must be fast on large inputs).

Prompt-visible tests are the HumanEval inputs (`base_input`, at most `num_visible`); if the buggy program
passes them all, the first failing hidden input is added so every prompt has a failing test to trace.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from next_jax.data.example import Provenance, RepairExample
from next_jax.data.mbpp_r import failure_type
from next_jax.data.readers import EvalPlusProblem, HumanEvalFixProblem
from next_jax.execution.channel import FrameTooLarge
from next_jax.execution.verdict import Candidate

log = logging.getLogger(__name__)

RTOL = 1e-7
TOO_LARGE = object()  # marks an input whose expected output is too large (or slow) to keep as a test
DEFAULT_FLOAT_ATOL = 1e-6

# Trusted test-side helper (Candidate.setup): EvalPlus's output comparison without numpy.
CHECK_SETUP = f"""
inf = float("inf")
nan = float("nan")


def _hefix_close(out, exp, atol):
    if out == exp:
        return True
    atol = atol or {DEFAULT_FLOAT_ATOL!r}
    if isinstance(exp, float) and isinstance(out, (int, float)) and not isinstance(out, bool):
        return abs(out - exp) <= atol + {RTOL!r} * abs(exp)
    if isinstance(exp, (list, tuple)) and type(out) is type(exp) and len(out) == len(exp):
        return all(_hefix_close(o, e, atol) for o, e in zip(out, exp))
    return False


def _hefix_poly(xs, x):
    return sum(c * x**i for i, c in enumerate(xs))
"""


def _is_floats(x: Any) -> bool:
    if isinstance(x, float):
        return True
    return isinstance(x, list | tuple) and len(x) > 0 and all(isinstance(v, float) for v in x)


def _literal(value: Any) -> str:
    """Python source for a plain value.

    inf and nan are names defined by CHECK_SETUP; integers too long for decimal `repr` (Python caps int->str
    at 4300 digits) are written in hex, which has no such limit.
    """
    t = type(value)
    if t is float and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if t is int and value.bit_length() > 10_000:
        return hex(value)
    if t is list:
        return "[" + ", ".join(map(_literal, value)) + "]"
    if t is tuple:
        return "(" + "".join(_literal(v) + ", " for v in value) + ")" if value else "()"
    if t is dict:
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def call_text(entry_point: str, args: Sequence[Any]) -> str:
    return f"{entry_point}({', '.join(_literal(a) for a in args)})"


def make_test(entry_point: str, args: Sequence[Any], expected: Any, atol: float) -> str:
    """One assert statement; float outputs go through the EvalPlus tolerance helper.

    `find_zero` (HumanEval/32) accepts any root, so, as in EvalPlus, its output is checked by evaluating the
    polynomial there rather than against the canonical root.
    """
    call = call_text(entry_point, args)
    if entry_point == "find_zero":
        return f"assert abs(_hefix_poly({_literal(args[0])}, {call})) <= {atol or DEFAULT_FLOAT_ATOL!r}"
    if _is_floats(expected):
        return f"assert _hefix_close({call}, {_literal(expected)}, {atol!r})"
    return f"assert {call} == {_literal(expected)}"


def _evaluate(pool: Any, code: str, calls: list[str]) -> list[dict]:
    """`pool.evaluate`, halving the batch when the answer is too large for one channel frame (the pool splits
    such a batch itself; a single call's too-large answer raises) or the batch runs past the pool's time limit;
    a single call that still fails is marked `{"unusable": reason}`."""
    try:
        return pool.evaluate(code, calls)
    except (FrameTooLarge, TimeoutError) as e:
        if len(calls) == 1:
            return [{"unusable": type(e).__name__}]
        mid = len(calls) // 2
        return _evaluate(pool, code, calls[:mid]) + _evaluate(pool, code, calls[mid:])


def expected_outputs(
    pool: Any, problem: EvalPlusProblem, inputs: Sequence[Sequence[Any]], chunk: int = 100
) -> list[Any]:
    """Outputs of the canonical solution on `inputs`, computed in the sandbox; `TOO_LARGE` where an output
    does not fit the pool's channel."""
    code = problem.prompt + problem.canonical_solution
    calls = [call_text(problem.entry_point, args) for args in inputs]
    out: list[Any] = []
    for start in range(0, len(calls), chunk):
        batch = calls[start : start + chunk]
        for call, res in zip(batch, _evaluate(pool, code, batch), strict=True):
            exc = res.get("exception")
            if res.get("unusable") or (
                exc and exc.get("type") == "PlainError"
            ):  # PlainError: pool's size cap
                out.append(TOO_LARGE)
            elif exc:
                raise RuntimeError(f"{problem.task_id}: canonical solution raised on {call[:200]}: {exc}")
            else:
                out.append(res["value"])
    return out


def _passes(pool: Any, code: str, test: str) -> bool:
    return pool.verify([Candidate("probe", code, (test,), CHECK_SETUP)])[0].ok


def build_hefix_plus(
    fix_problems: Sequence[HumanEvalFixProblem],
    plus_problems: Sequence[EvalPlusProblem],
    pool: Any,
    *,
    num_visible: int = 3,
    max_plus_inputs: int | None = None,
    max_test_chars: int = 100_000,
) -> list[RepairExample]:
    """HeFix+ examples for the HumanEvalFix problems that have EvalPlus inputs (all 164 in the public files)."""
    plus_by_number = {p.number: p for p in plus_problems}
    examples = []
    pending = []
    for fix in fix_problems:
        plus = plus_by_number.get(fix.number)
        if plus is None or plus.entry_point != fix.entry_point:
            raise ValueError(f"{fix.task_id}: no matching EvalPlus problem")
        plus_inputs = plus.plus_input if max_plus_inputs is None else plus.plus_input[:max_plus_inputs]
        inputs = list(plus.base_input) + list(plus_inputs)
        expected = expected_outputs(pool, plus, inputs)
        tests, dropped = [], 0
        for args, value in zip(inputs, expected, strict=True):
            test = None if value is TOO_LARGE else make_test(fix.entry_point, args, value, plus.atol)
            if test is None or len(test) > max_test_chars:
                dropped += 1  # a multi-megabyte literal per test would dwarf the rest of the dataset
                continue
            tests.append(test)
        if dropped:
            log.warning(
                "%s: dropped %d of %d inputs whose expected output is too large or too slow to compute",
                fix.task_id,
                dropped,
                len(inputs),
            )
        pending.append((fix, plus, tests, min(num_visible, len(tests))))
    verdicts = pool.verify(
        [
            Candidate(fix.task_id, fix.buggy_program, tuple(tests), CHECK_SETUP)
            for fix, _, tests, _ in pending
        ],
        details=True,
        all_tests=True,  # the verdict names every failing hidden input (see `named` below)
    )
    # One probe per visible test, all in one batch: which of them the buggy program fails.
    probes = [(k, i) for k, (_, _, _, n_vis) in enumerate(pending) for i in range(n_vis)]
    probe_verdicts = pool.verify(
        [
            Candidate(f"probe/{k}/{i}", pending[k][0].buggy_program, (pending[k][2][i],), CHECK_SETUP)
            for k, i in probes
        ]
    )
    failed_probe = {probe for probe, v in zip(probes, probe_verdicts, strict=True) if not v.ok}
    for k, ((fix, plus, tests, n_vis), verdict) in enumerate(zip(pending, verdicts, strict=True)):
        visible = list(range(n_vis))
        failing = [i for i in visible if (k, i) in failed_probe]
        if not failing:
            # Hidden inputs the verdict names first, then the rest in order, one test at a time (a test-level
            # verdict is exact; a whole-run timeout may name whichever test was running when time ran out).
            named = [int(d["test"]) for d in verdict.details if "test" in d and not d.get("ok", False)]
            order = named + [i for i in range(n_vis, len(tests)) if i not in named]
            extra = next((i for i in order if not _passes(pool, fix.buggy_program, tests[i])), None)
            if extra is not None:
                visible.append(extra)
                failing = [len(visible) - 1]
        examples.append(
            RepairExample(
                id=f"hefix_plus/{fix.number}",
                problem_id=fix.task_id,
                description=fix.docstring.strip(),
                buggy_code=fix.buggy_program,
                entry_point=fix.entry_point,
                tests=tuple(tests[i] for i in visible),
                hidden_tests=tuple(tests),
                reference=plus.prompt + plus.canonical_solution,  # EvalPlus's (corrected) oracle
                setup=CHECK_SETUP,
                failing_tests=tuple(failing),
                failure_type=failure_type(verdict) if not verdict.ok else "passes_evalplus",
                provenance=Provenance("humanevalfix", "human", fix.bug_type, fix.failure_symptoms),
            )
        )
    return examples
