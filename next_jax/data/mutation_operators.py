"""The AST mutation operators: each finds the sites in a program where it applies and proposes source edits.

Edits are made on the original text at the mutated node's position (not by unparsing the whole tree), so a
buggy program keeps its author's layout and comments. `OPERATORS` maps each operator's name to it; applying,
pairing and filtering edits is `next_jax.data.mutation`'s job.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
from collections.abc import Callable, Iterator

from next_jax.execution import astparse

_BINOP_SWAPS: dict[type, tuple[type, ...]] = {
    ast.Add: (ast.Sub,),
    ast.Sub: (ast.Add,),
    ast.Mult: (ast.FloorDiv, ast.Add),
    ast.Div: (ast.FloorDiv, ast.Mult),
    ast.FloorDiv: (ast.Div, ast.Mod),
    ast.Mod: (ast.FloorDiv,),
    ast.Pow: (ast.Mult,),
}
_CMP_SWAPS: dict[type, tuple[type, ...]] = {
    ast.Lt: (ast.LtE, ast.Gt),
    ast.LtE: (ast.Lt, ast.GtE),
    ast.Gt: (ast.GtE, ast.Lt),
    ast.GtE: (ast.Gt, ast.LtE),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
}
# Expression kinds whose text needs parentheses when they replace an operand of another operator.
_OPERATOR_EXPRS = (ast.BinOp, ast.BoolOp, ast.Compare, ast.UnaryOp, ast.IfExp, ast.Lambda, ast.NamedExpr)


@dataclasses.dataclass(frozen=True)
class Edit:
    """Replace source characters [start, end) with `text`; `what` says what changed, for provenance."""

    operator: str
    start: int
    end: int
    text: str
    what: str


class Source:
    """Character offsets of AST positions (which count UTF-8 bytes within a line)."""

    def __init__(self, source: str) -> None:
        self.text = source
        self.lines = source.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))
        self.tree = astparse.parse(source)
        self.parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node

    def offset(self, lineno: int, col_bytes: int) -> int:
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode("utf-8")[:col_bytes].decode("utf-8", "replace"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def segment(self, node: ast.AST) -> str:
        a, b = self.span(node)
        return self.text[a:b]

    def own_lines(self, stmt: ast.stmt) -> tuple[int, int] | None:
        """Character span of the whole lines holding `stmt`, if nothing else shares them."""
        first, last = self.lines[stmt.lineno - 1], self.lines[stmt.end_lineno - 1]
        before = first.encode("utf-8")[: stmt.col_offset].decode("utf-8", "replace")
        after = last.encode("utf-8")[stmt.end_col_offset :].decode("utf-8", "replace")
        if before.strip() or (after.strip() and not after.strip().startswith("#")):
            return None
        return self.starts[stmt.lineno - 1], self.starts[stmt.end_lineno]

    def expr_text(self, node: ast.expr, new: ast.expr) -> str:
        text = ast.unparse(new)
        if isinstance(new, _OPERATOR_EXPRS) and isinstance(self.parents.get(node), _OPERATOR_EXPRS):
            text = f"({text})"  # keep the mutated node one operand of its parent
        return text


def _replace(operator: str, src: Source, node: ast.AST, text: str) -> Edit:
    return Edit(operator, *src.span(node), text, f"{src.segment(node)} -> {text}")


def _functions(src: Source) -> Iterator[ast.FunctionDef]:
    for node in ast.walk(src.tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _locals(fn: ast.FunctionDef) -> list[str]:
    """Parameters and assigned names of `fn` (not of nested functions), in first-seen order."""
    names = [a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs]
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id not in names:
            names.append(node.id)
    return names


def binary_operator(src: Source) -> Iterator[Edit]:
    for node in ast.walk(src.tree):
        if isinstance(node, ast.BinOp):
            for new_op in _BINOP_SWAPS.get(type(node.op), ()):
                new = copy.copy(node)
                new.op = new_op()
                yield _replace("binary_operator", src, node, src.expr_text(node, new))
        elif isinstance(node, ast.AugAssign):
            for new_op in _BINOP_SWAPS.get(type(node.op), ()):
                new = copy.copy(node)
                new.op = new_op()
                yield _replace("binary_operator", src, node, ast.unparse(new))
        elif isinstance(node, ast.BoolOp):
            new = copy.copy(node)
            new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            yield _replace("binary_operator", src, node, src.expr_text(node, new))


def comparison(src: Source) -> Iterator[Edit]:
    for node in ast.walk(src.tree):
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                for new_op in _CMP_SWAPS.get(type(op), ()):
                    new = copy.copy(node)
                    new.ops = [*node.ops[:i], new_op(), *node.ops[i + 1 :]]
                    yield _replace("comparison", src, node, src.expr_text(node, new))


def _is_range(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"


def off_by_one_constant(src: Source) -> Iterator[Edit]:
    for node in ast.walk(src.tree):
        if (
            isinstance(node, ast.Constant)
            and type(node.value) is int
            and not _is_range(src.parents.get(node))
        ):
            for delta in (1, -1):
                new = ast.Constant(node.value + delta)
                yield Edit(
                    "off_by_one_constant",
                    *src.span(node),
                    src.expr_text(node, new),
                    f"{node.value} -> {node.value + delta}",
                )


def range_bound(src: Source) -> Iterator[Edit]:
    for node in ast.walk(src.tree):
        if _is_range(node):
            for arg in node.args[:2]:  # start and stop; a changed step is usually a different bug class
                if isinstance(arg, ast.Starred):
                    continue
                for delta in (1, -1):
                    if isinstance(arg, ast.Constant) and type(arg.value) is int:
                        new: ast.expr = ast.Constant(arg.value + delta)
                    else:
                        op = ast.Add() if delta > 0 else ast.Sub()
                        new = ast.BinOp(left=arg, op=op, right=ast.Constant(1))
                    yield Edit(
                        "range_bound",
                        *src.span(arg),
                        ast.unparse(new),
                        f"{src.segment(arg)} -> {ast.unparse(new)} in range()",
                    )


def wrong_variable(src: Source) -> Iterator[Edit]:
    for fn in _functions(src):
        names = _locals(fn)
        for node in ast.walk(fn):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in names:
                for other in names:
                    if other != node.id:
                        yield Edit("wrong_variable", *src.span(node), other, f"{node.id} -> {other}")


def swapped_arguments(src: Source) -> Iterator[Edit]:
    for node in ast.walk(src.tree):
        if isinstance(node, ast.Call) and len(node.args) >= 2:
            for i in range(len(node.args) - 1):
                a, b = node.args[i], node.args[i + 1]
                if isinstance(a, ast.Starred) or isinstance(b, ast.Starred):
                    continue
                if ast.dump(a) == ast.dump(b):
                    continue
                start, _ = src.span(a)
                _, end = src.span(b)
                middle = src.text[src.span(a)[1] : src.span(b)[0]]  # the comma and its spacing
                yield Edit(
                    "swapped_arguments",
                    start,
                    end,
                    src.segment(b) + middle + src.segment(a),
                    f"swap {src.segment(a)} and {src.segment(b)} in {src.segment(node.func)}()",
                )


def _bodies(src: Source) -> Iterator[list[ast.stmt]]:
    for node in ast.walk(src.tree):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                yield body


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def dropped_statement(src: Source) -> Iterator[Edit]:
    for body in _bodies(src):
        real = [s for s in body if not _is_docstring(s)]
        if len(real) < 2:
            continue  # dropping the only statement would leave an empty block
        for stmt in real:
            if isinstance(stmt, ast.Assign | ast.AugAssign | ast.Expr | ast.If | ast.For | ast.While):
                span = src.own_lines(stmt)
                if span is not None:
                    yield Edit(
                        "dropped_statement", *span, "", f"drop line {stmt.lineno}: {src.segment(stmt)[:60]}"
                    )


def duplicated_statement(src: Source) -> Iterator[Edit]:
    for body in _bodies(src):
        for stmt in body:
            # Re-running an assignment is usually a no-op; augmented assignments and calls are not.
            if isinstance(stmt, ast.AugAssign) or (
                isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            ):
                span = src.own_lines(stmt)
                if span is not None:
                    lines = src.text[span[0] : span[1]]
                    if not lines.endswith("\n"):
                        lines += "\n"
                    yield Edit(
                        "duplicated_statement",
                        span[0],
                        span[0],
                        lines,
                        f"duplicate line {stmt.lineno}: {src.segment(stmt)[:60]}",
                    )


def wrong_return(src: Source) -> Iterator[Edit]:
    for fn in _functions(src):
        names = _locals(fn)
        for node in ast.walk(fn):
            if not isinstance(node, ast.Return) or node.value is None:
                continue
            value = node.value
            if isinstance(value, ast.Constant) and type(value.value) is bool:
                yield Edit(
                    "wrong_return", *src.span(value), repr(not value.value), f"return {not value.value}"
                )
                continue
            current = value.id if isinstance(value, ast.Name) else None
            for other in names:
                if other != current:
                    yield Edit(
                        "wrong_return",
                        *src.span(value),
                        other,
                        f"return {other} instead of {src.segment(value)}",
                    )
            if isinstance(value, ast.Compare | ast.BoolOp | ast.UnaryOp):
                yield Edit(
                    "wrong_return", *src.span(value), f"not ({src.segment(value)})", "negated return value"
                )


_ATOMS = (ast.Name, ast.Call, ast.Attribute, ast.Subscript, ast.Constant)


def negated_condition(src: Source) -> Iterator[Edit]:
    """The test of an `if`, `while`, conditional expression or comprehension filter, negated."""
    tests: list[ast.expr] = []
    for node in ast.walk(src.tree):
        if isinstance(node, ast.If | ast.While | ast.IfExp):
            tests.append(node.test)
        elif isinstance(node, ast.comprehension):
            tests.extend(node.ifs)
    for test in tests:
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            text = src.segment(test.operand)  # `not x` -> `x`
            if not isinstance(test.operand, _ATOMS):
                text = f"({text})"
        else:
            seg = src.segment(test)
            text = f"not {seg}" if isinstance(test, _ATOMS) else f"not ({seg})"
        yield _replace("negated_condition", src, test, text)


# Functions and methods people mix up (HumanEvalFix's "function misuse" bugs).
_FUNCTION_SWAPS = {
    "min": "max",
    "max": "min",
    "any": "all",
    "all": "any",
    "sorted": "reversed",
}
_METHOD_SWAPS = {
    "startswith": "endswith",
    "endswith": "startswith",
    "lower": "upper",
    "upper": "lower",
    "islower": "isupper",
    "isupper": "islower",
    "isdigit": "isalpha",
    "isalpha": "isdigit",
    "find": "rfind",
    "rfind": "find",
    "strip": "rstrip",
    "lstrip": "strip",
    "rstrip": "strip",
    "append": "extend",
    "extend": "append",
}


def wrong_function(src: Source) -> Iterator[Edit]:
    for node in ast.walk(src.tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in _FUNCTION_SWAPS:
            new = _FUNCTION_SWAPS[func.id]
            yield Edit("wrong_function", *src.span(func), new, f"{func.id}() -> {new}()")
        elif isinstance(func, ast.Attribute) and func.attr in _METHOD_SWAPS:
            new = _METHOD_SWAPS[func.attr]
            _, end = src.span(func)
            yield Edit("wrong_function", end - len(func.attr), end, new, f".{func.attr}() -> .{new}()")


def index_off_by_one(src: Source) -> Iterator[Edit]:
    """A computed index or slice bound (`xs[i]`, `xs[:n]`, `s[len(s) - k:]`) moved by one.

    Constant indices and bounds are `off_by_one_constant`'s.
    """
    for node in ast.walk(src.tree):
        if not isinstance(node, ast.Subscript):
            continue
        if isinstance(node.slice, ast.Slice):
            exprs = [e for e in (node.slice.lower, node.slice.upper) if e is not None]
        else:
            exprs = [node.slice] if isinstance(node.slice, ast.Name | ast.BinOp | ast.Call) else []
        for expr in exprs:
            if isinstance(expr, ast.Constant) or (
                isinstance(expr, ast.UnaryOp) and isinstance(expr.operand, ast.Constant)
            ):
                continue
            for op in (ast.Add(), ast.Sub()):
                new = ast.BinOp(left=expr, op=op, right=ast.Constant(1))
                text = ast.unparse(new)
                yield Edit("index_off_by_one", *src.span(expr), text, f"{src.segment(expr)} -> {text}")


OPERATORS: dict[str, Callable[[Source], Iterator[Edit]]] = {
    f.__name__: f
    for f in (
        binary_operator,
        comparison,
        off_by_one_constant,
        range_bound,
        wrong_variable,
        swapped_arguments,
        dropped_statement,
        duplicated_statement,
        wrong_return,
        negated_condition,
        wrong_function,
        index_off_by_one,
    )
}
