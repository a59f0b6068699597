"""Which candidate calls the dispatcher may send ahead of the judge, without changing what anyone observes.

A test such as ``assert remove_Occ("hello", "l") == "heo"`` makes exactly one call into the candidate, with
literal arguments, whatever the candidate returns. When every test of a candidate is of that kind, the dispatcher
sends all the calls to the candidate at once (in test order, so the candidate sees the same sequence of calls it
would see one test at a time) and hands the answers to the judge with the tests; the judge then consumes them in
order instead of asking through the dispatcher for each. This saves two process hops per test. The expected
values still never leave the judge: the candidate receives only the call expressions' values, as before.

The plan is conservative: a test qualifies only if it is one ``assert`` whose candidate interaction is provably
that single unconditional call (no short-circuiting, no comprehension or lambda, no attribute access on anything
but a standard module, only allow-listed helper functions, literal arguments without sets, whose iteration
order would depend on the dispatcher's hash seed). Anything else falls back to one request per call.
"""

from __future__ import annotations

import ast
import builtins
import functools
import json
import operator
import sys
from typing import Any

from next_jax.execution import astparse, plain
from next_jax.execution.saferepr import safe_repr

# Helpers a test may apply to the result without any of them reaching back into the candidate.
_SAFE_CALLS = frozenset({
    # Not dict(): it looks up a `keys` attribute, which on a candidate object's handle is a request.
    "abs", "all", "any", "bool", "float", "frozenset", "int", "isinstance", "len", "list", "max", "min",
    "repr", "reversed", "round", "set", "sorted", "str", "sum", "tuple", "type",
})
_SAFE_MODULE_FUNCTIONS = frozenset({("math", "isclose"), ("math", "isnan"), ("math", "isinf"), ("math", "fabs"),
                                    ("cmath", "isclose")})
# Nodes that evaluate a part conditionally, repeatedly or later, or bind names.
_UNSAFE_NODES = (ast.BoolOp, ast.IfExp, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Lambda,
                 ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom, ast.Starred, ast.JoinedStr)
# The requests go out before any answer is read. The channel is a unix stream socket, whose queued bytes count
# against the sender's buffer (~200 KiB by default), which the candidate cannot shrink: a plan well below that
# can never block the dispatcher on a candidate that stops reading.
MAX_PLAN_BYTES = 16_384


def judge_binds_to_candidate(name: str, names: dict, entry_point: str) -> bool:
    """Whether the judge's namespace binds ``name`` to the candidate (``judge.Judge._namespace`` decides by this):
    the entry point always, else any name of the program that is neither a standard module nor a builtin."""
    if name not in names:
        return False
    return name == entry_point or not (name in sys.stdlib_module_names or hasattr(builtins, name))


def plan(tests: tuple[str, ...] | list[str], setup: str, names: dict, entry_point: str) -> list[dict] | None:
    """One ``call`` request per test, in test order, if every test qualifies; else None."""
    if (setup or "").strip() or not tests:
        return None
    requests = []
    size = 0
    for test in tests:
        request = _single_call(test, names, entry_point)
        if request is None:
            return None
        size += len(repr(request))
        if size > MAX_PLAN_BYTES:
            return None
        requests.append(request)
    return requests


@functools.lru_cache(maxsize=4096)
def _parsed_test(test: str) -> ast.Module | None:
    """A test's syntax tree, parsed once: the same tests come back with every sample of a problem, and both the
    plan and the local comparison read them. Callers only read the tree."""
    try:
        return astparse.parse(test, "<test>", "exec")
    except (SyntaxError, ValueError):
        return None


def _single_call(test: str, names: dict, entry_point: str) -> dict | None:
    tree = _parsed_test(test)
    if tree is None:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert) or tree.body[0].msg is not None:
        return None
    calls: list[ast.Call] = []
    for node in ast.walk(tree.body[0].test):
        if isinstance(node, _UNSAFE_NODES) or (isinstance(node, ast.Compare) and len(node.ops) != 1):
            return None
        if isinstance(node, ast.Name):
            if judge_binds_to_candidate(node.id, names, entry_point):
                calls.append(node)  # checked below: must be the func of the one candidate call
        elif isinstance(node, ast.Attribute):
            base = node.value  # only a standard module the judge binds for real (the program imported it)
            if not (isinstance(base, ast.Name) and base.id in sys.stdlib_module_names
                    and names.get(base.id) == ["module", base.id]
                    and not judge_binds_to_candidate(base.id, names, entry_point)):
                return None
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                if not (judge_binds_to_candidate(func.id, names, entry_point) or func.id in _SAFE_CALLS):
                    return None
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                if (func.value.id, func.attr) not in _SAFE_MODULE_FUNCTIONS:
                    return None
            else:
                return None
    if len(calls) != 1:
        return None
    target = calls[0].id
    if names.get(target) != ["callable"]:
        return None
    call = next((n for n in ast.walk(tree.body[0].test)
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == target), None)
    if call is None or not _evaluated_first(tree.body[0].test, call):
        return None
    try:
        args = [_literal(a) for a in call.args]
        kwargs = {k.arg: _literal(k.value) for k in call.keywords if k.arg is not None}
    except ValueError:
        return None
    if len(kwargs) != len(call.keywords):
        return None
    try:
        return {"op": "call", "target": target, "args": plain.encode(args), "kwargs": plain.encode(kwargs)}
    except plain.PlainError:
        return None


def _evaluated_first(node: ast.AST, call: ast.Call) -> bool:
    """Whether evaluating ``node`` makes ``call`` before anything that could raise.

    Then the judge makes the call exactly when the plan does, even if the test fails right after it.
    """
    if node is call:
        return True
    if isinstance(node, ast.Compare):
        return _evaluated_first(node.left, call) or (_inert(node.left) and _evaluated_first(node.comparators[0], call))
    if isinstance(node, ast.BinOp):
        return _evaluated_first(node.left, call) or (_inert(node.left) and _evaluated_first(node.right, call))
    if isinstance(node, ast.UnaryOp):
        return _evaluated_first(node.operand, call)
    if isinstance(node, ast.Subscript):
        return _evaluated_first(node.value, call)
    if isinstance(node, ast.Call) and node.args:  # a vetted helper: its name resolves; its first argument first
        return _evaluated_first(node.args[0], call)
    return False


def _inert(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant)


def _literal(node: ast.AST) -> Any:
    """A literal argument's value; sets (hash-seed-dependent order when encoded) are refused."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Set | ast.Call):
            raise ValueError("not a plain literal")
    return ast.literal_eval(node)


# Comparisons the dispatcher can decide itself on the returned plain value: `CALL == literal`, `CALL != literal`,
# `CALL is None/True/False`, `CALL is not ...`, and the bare truthiness of CALL (`assert CALL`, `assert not CALL`).
_LOCAL_OPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Is: operator.is_, ast.IsNot: operator.is_not}


def local_results(tests: tuple[str, ...] | list[str], planned: list[dict], answers: list[dict]) -> list[dict] | None:
    """The judge's per-test results, computed here, when every test is a plain comparison of its call's value
    with a literal (else None: the judge runs the tests).

    Comparing exact built-in values runs no candidate code, so the judge's separate process is not needed for
    these; the results are exactly what ``judge.Judge._run_comparison`` reports for them.
    """
    if not (len(answers) == len(planned) == len(tests)):
        return None
    checks = local_checks(tests, planned)
    if checks is None:
        return None
    return [local_result(check, answer) for check, answer in zip(checks, answers, strict=True)]


def local_checks(tests: tuple[str, ...] | list[str], planned: list[dict]) -> list[tuple] | None:
    """Per test, what ``local_result`` needs to decide it from its call's answer; None unless every test is a
    plain comparison of its planned call's value with a literal."""
    if len(planned) != len(tests):
        return None
    checks = []
    for test, request in zip(tests, planned, strict=True):
        check = _local_check(test, request["target"])
        if check is None:
            return None
        checks.append(check)
    return checks


def same_call(request: dict, planned: dict) -> bool:
    """Whether a call the judge asks for is exactly the planned one (same target and encoded arguments)."""
    return all(json.dumps(request.get(key), sort_keys=True) == json.dumps(planned.get(key), sort_keys=True)
               for key in ("op", "target", "args", "kwargs"))


def _local_check(test: str, target: str) -> tuple | None:
    """(op node type or 'truth'/'not', expected value) for a test of a supported form, whose tested side is the
    planned call itself (not, say, ``len()`` of it)."""
    tree = _parsed_test(test)
    if tree is None:
        return None
    node = tree.body
    if len(node) != 1 or not isinstance(node[0], ast.Assert):
        return None
    expr = node[0].test

    def is_the_call(n: ast.AST) -> bool:
        return isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == target

    if is_the_call(expr):
        return ("truth", None)
    if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.Not) and is_the_call(expr.operand):
        return ("not", None)
    if not (isinstance(expr, ast.Compare) and len(expr.ops) == 1 and is_the_call(expr.left)
            and type(expr.ops[0]) in _LOCAL_OPS):
        return None
    op, right = type(expr.ops[0]), expr.comparators[0]
    if op in (ast.Is, ast.IsNot):
        if not (isinstance(right, ast.Constant) and right.value in (None, True, False)
                and type(right.value) in (bool, type(None))):
            return None
        return (op, right.value)
    try:
        return (op, ast.literal_eval(right))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def local_result(check: tuple, answer: dict) -> dict:
    """One test's result from its call's (validated) answer, as the judge would report it."""
    if "raise" in answer:  # what the judge reports when the candidate raised answering the call
        return {"ok": False, "kind": "candidate_error", **answer["raise"]}
    kind, expected = check
    try:
        got = plain.decode(answer["value"], lambda ident, type_name: plain.Handle(ident, type_name))
        if kind == "truth" or kind == "not":
            ok = bool(got) if kind == "truth" else not got
            return {"ok": True} if ok else {"ok": False, "kind": "assert", "message": ""}
        if _LOCAL_OPS[kind](got, expected):
            return {"ok": True}
    except Exception as e:  # noqa: BLE001 - as the judge reports an error raised by test code
        return {"ok": False, "kind": "test_error", "type": type(e).__name__, "message": str(e)[:2000]}
    return {"ok": False, "kind": "assert", "op": kind.__name__, "expected": _show(expected), "got": _show(got)}


def _show(value: Any) -> str:
    return repr(value) if type(value) is plain.Handle else safe_repr(value)
