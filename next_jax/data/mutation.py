"""AST mutation of reference solutions: the fully offline source of buggy programs for MBPP-R.

Each operator finds the sites in a program where it applies and proposes source edits. Edits are made on the
original text at the mutated node's position (not by unparsing the whole tree), so the buggy program keeps its
author's layout and comments and differs from the reference only where the bug is. Equivalent mutants are
possible (e.g. swapping the arguments of `max`): the builder keeps only mutants that fail a test.

Operators (in `mutation_operators`): `binary_operator` (+ to -, * to //, and/or...), `comparison` (< to <=, == to !=...),
`off_by_one_constant`, `range_bound`, `wrong_variable`, `swapped_arguments`, `dropped_statement`,
`duplicated_statement`, `wrong_return`, `negated_condition` (if/while/filter test negated), `wrong_function`
(min/max, any/all, startswith/endswith, append/extend... swapped), `index_off_by_one` (a computed index or
slice bound +-1).
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import random
from collections.abc import Iterator, Sequence

from next_jax.data.mutation_operators import OPERATORS, Edit, Source
from next_jax.execution import astparse


@dataclasses.dataclass(frozen=True)
class Mutant:
    """A mutated program and the edit that made it."""

    code: str
    operator: str
    what: str


def apply_edit(source: str, edit: Edit) -> str:
    return source[: edit.start] + edit.text + source[edit.end :]


def candidate_edits(source: str, operators: Sequence[str] | None = None) -> list[Edit]:
    """All edits the chosen operators (default: all) propose for `source`, in a deterministic order."""
    src = Source(source)
    names = list(operators) if operators is not None else list(OPERATORS)
    unknown = set(names) - set(OPERATORS)
    if unknown:
        raise ValueError(f"unknown mutation operators {sorted(unknown)}; known: {sorted(OPERATORS)}")
    return [e for name in names for e in OPERATORS[name](src)]


def normalized(code: str) -> str:
    """Code with comments, docstring-free layout and whitespace normalised (for deduplication)."""
    try:
        return ast.unparse(astparse.parse(code))
    except SyntaxError:
        return " ".join(code.split())


def _apply_pair(source: str, a: Edit, b: Edit) -> str | None:
    """Both edits applied, or None where their spans overlap."""
    first, second = sorted((a, b), key=lambda e: e.start)
    if first.end > second.start or first.start == second.start:
        return None
    return apply_edit(apply_edit(source, second), first)  # the later span first: offsets stay valid


_MAX_PAIR_SITES = 300  # second-order mutants pair edits among this many (shuffled) ones: ~45k pairs at most


def iter_mutants(
    source: str, rng: random.Random, operators: Sequence[str] | None = None, max_order: int = 1
) -> Iterator[Mutant]:
    """Distinct, parseable mutants in random order, drawn evenly over operators then sites.

    Drawing operators first keeps frequent site kinds (every `Name` is a wrong-variable site) from crowding
    out rarer but realistic ones (range bounds, comparisons). With `max_order=2`, once every single edit is
    used, pairs of non-overlapping edits follow (operator `a+b`): small programs have few single-edit
    mutants, and model-written bugs often differ from a right answer in two places. Lazy, so a caller that
    needs one failing mutant pays only for the mutants it looks at.
    """
    if max_order not in (1, 2):
        raise ValueError(f"max_order must be 1 or 2, got {max_order}")
    by_op: dict[str, list[Edit]] = {}
    for e in candidate_edits(source, operators):
        by_op.setdefault(e.operator, []).append(e)
    for edits in by_op.values():
        rng.shuffle(edits)
    singles = [e for op in sorted(by_op) for e in by_op[op]]
    seen = {normalized(source)}

    def fresh(code: str) -> bool:
        try:
            key = ast.unparse(astparse.parse(code))
        except SyntaxError:
            return False
        if key in seen:
            return False
        seen.add(key)
        return True

    ops = sorted(by_op)
    rng.shuffle(ops)
    while ops:
        for op in list(ops):
            if not by_op[op]:
                ops.remove(op)
                continue
            edit = by_op[op].pop()
            code = apply_edit(source, edit)
            if fresh(code):
                yield Mutant(code, edit.operator, edit.what)
    if max_order < 2:
        return
    rng.shuffle(singles)
    sites = singles[:_MAX_PAIR_SITES]
    pairs = list(itertools.combinations(range(len(sites)), 2))
    rng.shuffle(pairs)
    for i, k in pairs:
        a, b = sites[i], sites[k]
        code = _apply_pair(source, a, b)
        if code is not None and fresh(code):
            yield Mutant(code, f"{a.operator}+{b.operator}", f"{a.what}; {b.what}")


def mutants(
    source: str,
    rng: random.Random,
    max_mutants: int,
    operators: Sequence[str] | None = None,
    max_order: int = 1,
) -> list[Mutant]:
    """Up to `max_mutants` mutants from `iter_mutants`."""
    return list(itertools.islice(iter_mutants(source, rng, operators, max_order), max_mutants))
