"""Micro program templates: one- to five-line functions for the embedded default's tiny model.

A ~1M-parameter byte decoder trained for minutes on a CPU did not condition on the standard templates' prompts
(~740 bytes of prompt + target; measured about 3% dev fix rate, most answers another template's body); these
keep prompt + target near 500 bytes with an inline trace (~330 + ~180), where it reached 12-18%. Same
`Program` contract as `synthetic_templates`: names, constants and conditions drawn from the generator's rng.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from next_jax.data.synthetic_templates import Program, _cond, _ints, _word

_X = ("x", "n", "v", "a")
_XS = ("xs", "nums", "vals", "items")
_S = ("s", "text", "word")


def affine(rng: random.Random) -> Program:
    x, a, b = rng.choice(_X), rng.randint(2, 5), rng.randint(1, 9)
    name = rng.choice(("scale", "affine", "step"))
    code = f"def {name}({x}):\n    return {x} * {a} + {b}\n"
    desc = f"Write a function {name}({x}) that returns {x} times {a} plus {b}."
    return Program("micro_affine", name, code, desc, lambda r: (r.randint(-9, 20),))


def larger(rng: random.Random) -> Program:
    a, b = rng.choice((("a", "b"), ("x", "y"), ("p", "q")))
    big = rng.random() < 0.5
    op, word, name = (">", "larger", "larger") if big else ("<", "smaller", "smaller")
    code = f"def {name}({a}, {b}):\n    if {a} {op} {b}:\n        return {a}\n    return {b}\n"
    desc = f"Write a function {name}({a}, {b}) that returns the {word} of two numbers."
    return Program("micro_larger", name, code, desc, lambda r: (r.randint(-9, 20), r.randint(-9, 20)))


def _over_selected(rng: random.Random, template: str, names: tuple[str, ...], body: str, verb: str) -> Program:
    """A one-line function over the numbers of a list that meet a drawn condition; `body` is a format string
    over {x}, {xs} and {cond}."""
    xs, x = rng.choice(_XS), rng.choice(_X)
    cond, eng = _cond(rng, x)
    name = rng.choice(names)
    code = f"def {name}({xs}):\n    return {body.format(x=x, xs=xs, cond=cond)}\n"
    desc = f"Write a function {name}({xs}) that {verb} the numbers in a list that are {eng}."
    return Program(template, name, code, desc, lambda r: (_ints(r, max_len=6),))


def count_if(rng: random.Random) -> Program:
    return _over_selected(rng, "micro_count_if", ("count_if", "how_many"), "len([{x} for {x} in {xs} if {cond}])",
                          "counts")


def sum_if(rng: random.Random) -> Program:
    return _over_selected(rng, "micro_sum_if", ("sum_if", "total_of"), "sum({x} for {x} in {xs} if {cond})", "sums")


def keep_if(rng: random.Random) -> Program:
    return _over_selected(rng, "micro_keep_if", ("keep", "select"), "[{x} for {x} in {xs} if {cond}]", "returns")


def map_each(rng: random.Random) -> Program:
    xs, x, k, c = rng.choice(_XS), rng.choice(_X), rng.randint(2, 4), rng.randint(1, 5)
    name = rng.choice(("map_each", "shift_all"))
    code = f"def {name}({xs}):\n    return [{x} * {k} - {c} for {x} in {xs}]\n"
    desc = f"Write a function {name}({xs}) that multiplies each number in a list by {k} and subtracts {c}."
    return Program("micro_map_each", name, code, desc, lambda r: (_ints(r, max_len=5),))


def floor_at(rng: random.Random) -> Program:
    x, lo = rng.choice(_X), rng.randint(-3, 6)
    name = rng.choice(("at_least", "floor_at"))
    code = f"def {name}({x}):\n    if {x} < {lo}:\n        return {lo}\n    return {x}\n"
    desc = f"Write a function {name}({x}) that returns {x}, or {lo} if {x} is less than {lo}."
    return Program("micro_floor_at", name, code, desc, lambda r: (r.randint(-9, 12),))


def between(rng: random.Random) -> Program:
    x, lo, hi = rng.choice(_X), rng.randint(-3, 3), rng.randint(5, 12)
    name = rng.choice(("between", "in_range"))
    code = f"def {name}({x}):\n    return {lo} <= {x} <= {hi}\n"
    desc = f"Write a function {name}({x}) that tells whether {x} is between {lo} and {hi} inclusive."
    return Program("micro_between", name, code, desc, lambda r: (r.randint(-9, 16),))


def ends_sum(rng: random.Random) -> Program:
    xs = rng.choice(_XS)
    name = rng.choice(("ends_sum", "first_plus_last"))
    code = f"def {name}({xs}):\n    return {xs}[0] + {xs}[-1]\n"
    desc = f"Write a function {name}({xs}) that adds the first and the last number of a non-empty list."
    return Program("micro_ends_sum", name, code, desc, lambda r: (_ints(r, min_len=2, max_len=6),))


def prefix_tag(rng: random.Random) -> Program:
    s, k, tag = rng.choice(_S), rng.randint(1, 4), rng.choice("!?#*")
    name = rng.choice(("tag", "clip"))
    code = f"def {name}({s}):\n    return {s}[:{k}] + '{tag}'\n"
    desc = f"Write a function {name}({s}) that returns the first {k} characters of a string followed by '{tag}'."
    return Program("micro_prefix_tag", name, code, desc, lambda r: (_word(r, max_len=7),))


def sign(rng: random.Random) -> Program:
    x = rng.choice(_X)
    name = rng.choice(("sign", "signum"))
    code = f"def {name}({x}):\n    if {x} > 0:\n        return 1\n    if {x} < 0:\n        return -1\n    return 0\n"
    desc = f"Write a function {name}({x}) that returns 1, -1 or 0 for a positive, negative or zero {x}."
    return Program("micro_sign", name, code, desc, lambda r: (r.randint(-9, 9),))


def square_sum(rng: random.Random) -> Program:
    xs, x, k = rng.choice(_XS), rng.choice(_X), rng.randint(2, 3)
    name = rng.choice(("power_sum", "sum_powers"))
    code = f"def {name}({xs}):\n    return sum({x} ** {k} for {x} in {xs})\n"
    desc = f"Write a function {name}({xs}) that sums the {('squares', 'cubes')[k - 2]} of the numbers in a list."
    return Program("micro_square_sum", name, code, desc, lambda r: (_ints(r, lo=-5, hi=6, max_len=5),))


def running_max(rng: random.Random) -> Program:
    xs, x, best = rng.choice(_XS), rng.choice(_X), rng.choice(("best", "top", "m"))
    name = rng.choice(("largest", "max_of"))
    code = (f"def {name}({xs}):\n    {best} = {xs}[0]\n    for {x} in {xs}:\n        if {x} > {best}:\n"
            f"            {best} = {x}\n    return {best}\n")
    desc = f"Write a function {name}({xs}) that returns the largest number of a non-empty list."
    return Program("micro_running_max", name, code, desc, lambda r: (_ints(r, min_len=1, max_len=6),))


MICRO_TEMPLATES: dict[str, Callable[[random.Random], Program]] = {
    f"micro_{f.__name__}": f
    for f in (affine, larger, count_if, sum_if, keep_if, map_each, floor_at, between, ends_sum, prefix_tag,
              sign, square_sum, running_max)
}
