"""Program templates for the synthetic repair set: small functions with loops, conditionals, arithmetic, list
and string operations, each with a templated description and an input generator.

Every template draws its names, constants and conditions from the generator's `random.Random`, so one seed
gives one program. Templates use only bounded loops (`for` over inputs or `range` of small values) so that their
mutants, which run in-process during generation, stay cheap.
"""

from __future__ import annotations

import dataclasses
import random
import string
from collections.abc import Callable

Args = tuple[object, ...]


@dataclasses.dataclass(frozen=True)
class Program:
    """A generated reference program, its description and a sampler of call arguments."""

    template: str
    entry_point: str
    code: str
    description: str
    make_args: Callable[[random.Random], Args]


_LIST_NAMES = ("nums", "values", "xs", "items", "numbers", "arr", "data", "seq")
_STR_NAMES = ("s", "text", "word", "line", "chars", "string")
_ACC_NAMES = ("total", "acc", "result", "count", "res", "out", "answer")
_ELEM_NAMES = ("x", "v", "n", "item", "elem", "num")
_IDX_NAMES = ("i", "j", "k", "idx", "pos")


def _ints(rng: random.Random, lo: int = -9, hi: int = 20, min_len: int = 0, max_len: int = 7) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(min_len, max_len))]


def _word(rng: random.Random, alphabet: str = "abcdeiou", min_len: int = 0, max_len: int = 9) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(min_len, max_len)))


def _cond(rng: random.Random, x: str) -> tuple[str, str]:
    """A condition on an integer variable and its English form."""
    k = rng.randint(2, 5)
    return rng.choice(
        [
            (f"{x} % 2 == 0", "even"),
            (f"{x} % 2 == 1", "odd"),
            (f"{x} > {k}", f"greater than {k}"),
            (f"{x} < {k}", f"less than {k}"),
            (f"{x} % {k} == 0", f"divisible by {k}"),
            (f"{x} >= 0", "non-negative"),
        ]
    )


def sum_where(rng: random.Random) -> Program:
    xs, acc, x = rng.choice(_LIST_NAMES), rng.choice(_ACC_NAMES), rng.choice(_ELEM_NAMES)
    cond, eng = _cond(rng, x)
    name = rng.choice(["sum_selected", "filtered_sum", "sum_" + eng.split()[0].replace("-", "_")])
    code = (
        f"def {name}({xs}):\n    {acc} = 0\n    for {x} in {xs}:\n        if {cond}:\n"
        f"            {acc} += {x}\n    return {acc}\n"
    )
    desc = f"Write a function {name}({xs}) that returns the sum of the elements of a list of integers that are {eng}."
    return Program("sum_where", name, code, desc, lambda r: (_ints(r),))


def count_where(rng: random.Random) -> Program:
    xs, acc, x = rng.choice(_LIST_NAMES), rng.choice(_ACC_NAMES), rng.choice(_ELEM_NAMES)
    cond, eng = _cond(rng, x)
    name = rng.choice(["count_matching", "how_many", "count_selected"])
    code = (
        f"def {name}({xs}):\n    {acc} = 0\n    for {x} in {xs}:\n        if {cond}:\n"
        f"            {acc} = {acc} + 1\n    return {acc}\n"
    )
    desc = f"Write a function {name}({xs}) that counts how many numbers in a list are {eng}."
    return Program("count_where", name, code, desc, lambda r: (_ints(r),))


def argmax(rng: random.Random) -> Program:
    xs, i, best = rng.choice(_LIST_NAMES), rng.choice(_IDX_NAMES), rng.choice(("best", "top", "best_idx"))
    largest = rng.random() < 0.5
    op, word = (">", "largest") if largest else ("<", "smallest")
    name = f"index_of_{'max' if largest else 'min'}"
    code = (
        f"def {name}({xs}):\n    {best} = 0\n    for {i} in range(1, len({xs})):\n"
        f"        if {xs}[{i}] {op} {xs}[{best}]:\n            {best} = {i}\n    return {best}\n"
    )
    desc = (
        f"Write a function {name}({xs}) that returns the index of the {word} element of a non-empty list "
        f"(the first one if there are ties)."
    )
    return Program("argmax", name, code, desc, lambda r: (_ints(r, min_len=1),))


def product_range(rng: random.Random) -> Program:
    n, acc, i = rng.choice(("n", "m", "limit")), rng.choice(_ACC_NAMES), rng.choice(_IDX_NAMES)
    start = rng.randint(1, 3)
    name = rng.choice(["product_upto", "range_product"])
    code = (
        f"def {name}({n}):\n    {acc} = 1\n    for {i} in range({start}, {n} + 1):\n        {acc} *= {i}\n"
        f"    return {acc}\n"
    )
    desc = f"Write a function {name}({n}) that returns the product of the integers from {start} to {n} inclusive (1 if there are none)."
    return Program("product_range", name, code, desc, lambda r: (r.randint(0, 8),))


def scale_list(rng: random.Random) -> Program:
    xs, out, x = rng.choice(_LIST_NAMES), rng.choice(("out", "result", "scaled")), rng.choice(_ELEM_NAMES)
    a, b = rng.randint(2, 4), rng.randint(1, 6)
    name = rng.choice(["transform", "scale_shift", "affine"])
    code = (
        f"def {name}({xs}):\n    {out} = []\n    for {x} in {xs}:\n        {out}.append({x} * {a} + {b})\n"
        f"    return {out}\n"
    )
    desc = f"Write a function {name}({xs}) that returns a new list where each number is multiplied by {a} and then increased by {b}."
    return Program("scale_list", name, code, desc, lambda r: (_ints(r),))


def clamp(rng: random.Random) -> Program:
    x = rng.choice(_ELEM_NAMES)
    lo, hi = rng.randint(-5, 2), rng.randint(5, 12)
    name = rng.choice(["clamp", "bound", "limit_value"])
    code = (
        f"def {name}({x}):\n    if {x} < {lo}:\n        return {lo}\n    if {x} > {hi}:\n        return {hi}\n"
        f"    return {x}\n"
    )
    desc = f"Write a function {name}({x}) that returns {x} limited to the range [{lo}, {hi}]."
    return Program("clamp", name, code, desc, lambda r: (r.randint(-12, 20),))


def count_pairs(rng: random.Random) -> Program:
    xs, t, acc = rng.choice(_LIST_NAMES), rng.choice(("target", "goal", "k")), rng.choice(_ACC_NAMES)
    i, j = "i", "j"
    name = rng.choice(["count_pairs", "pairs_with_sum"])
    code = (
        f"def {name}({xs}, {t}):\n    {acc} = 0\n    for {i} in range(len({xs})):\n"
        f"        for {j} in range({i} + 1, len({xs})):\n            if {xs}[{i}] + {xs}[{j}] == {t}:\n"
        f"                {acc} += 1\n    return {acc}\n"
    )
    desc = f"Write a function {name}({xs}, {t}) that counts the pairs of positions i < j whose elements add up to {t}."
    return Program("count_pairs", name, code, desc, lambda r: (_ints(r, 0, 6), r.randint(2, 9)))


def running_total(rng: random.Random) -> Program:
    xs, out, x = rng.choice(_LIST_NAMES), rng.choice(("out", "sums", "prefix")), rng.choice(_ELEM_NAMES)
    acc = rng.choice(("total", "acc", "running"))
    name = rng.choice(["running_sum", "prefix_sums", "cumulative"])
    code = (
        f"def {name}({xs}):\n    {out} = []\n    {acc} = 0\n    for {x} in {xs}:\n        {acc} += {x}\n"
        f"        {out}.append({acc})\n    return {out}\n"
    )
    desc = f"Write a function {name}({xs}) that returns the list of running totals of a list of numbers."
    return Program("running_total", name, code, desc, lambda r: (_ints(r),))


def count_vowels(rng: random.Random) -> Program:
    s, acc, c = rng.choice(_STR_NAMES), rng.choice(_ACC_NAMES), rng.choice(("c", "ch", "letter"))
    chars = rng.choice(["aeiou", "ae", "xyz", "abc"])
    name = rng.choice(["count_letters", "count_special", f"count_{chars}"])
    code = (
        f"def {name}({s}):\n    {acc} = 0\n    for {c} in {s}:\n        if {c} in '{chars}':\n"
        f"            {acc} += 1\n    return {acc}\n"
    )
    desc = f"Write a function {name}({s}) that counts the characters of a string that are one of '{chars}'."
    return Program("count_vowels", name, code, desc, lambda r: (_word(r, "abcdeixyzou"),))


def reverse_words(rng: random.Random) -> Program:
    s, words = rng.choice(_STR_NAMES), rng.choice(("words", "parts", "tokens"))
    sep = rng.choice([" ", "-", ","])
    name = rng.choice(["reverse_words", "flip_order"])
    code = (
        f"def {name}({s}):\n    {words} = {s}.split({sep!r})\n    {words}.reverse()\n"
        f"    return {sep!r}.join({words})\n"
    )
    desc = f"Write a function {name}({s}) that reverses the order of the {sep!r}-separated words of a string."
    return Program(
        "reverse_words",
        name,
        code,
        desc,
        lambda r: (sep.join(_word(r, min_len=1, max_len=4) for _ in range(r.randint(1, 5))),),
    )


def is_palindrome(rng: random.Random) -> Program:
    s, i = rng.choice(_STR_NAMES), rng.choice(_IDX_NAMES)
    name = rng.choice(["is_palindrome", "reads_same_backwards"])
    code = (
        f"def {name}({s}):\n    for {i} in range(len({s}) // 2):\n        if {s}[{i}] != {s}[len({s}) - 1 - {i}]:\n"
        f"            return False\n    return True\n"
    )
    desc = f"Write a function {name}({s}) that checks whether a string reads the same forwards and backwards."

    def args(r: random.Random) -> Args:
        half = _word(r, "abc", 0, 4)
        return (half + r.choice(["", "a", "b"]) + half[::-1] if r.random() < 0.5 else _word(r, "abc", 1, 6),)

    return Program("is_palindrome", name, code, desc, args)


def digit_sum(rng: random.Random) -> Program:
    n, acc, d = rng.choice(("n", "number", "value")), rng.choice(_ACC_NAMES), rng.choice(("d", "digit", "ch"))
    name = rng.choice(["digit_sum", "sum_of_digits"])
    code = f"def {name}({n}):\n    {acc} = 0\n    for {d} in str({n}):\n        {acc} += int({d})\n    return {acc}\n"
    desc = (
        f"Write a function {name}({n}) that returns the sum of the decimal digits of a non-negative integer."
    )
    return Program("digit_sum", name, code, desc, lambda r: (r.randint(0, 99999),))


def classify(rng: random.Random) -> Program:
    x = rng.choice(_ELEM_NAMES)
    a, b = rng.sample([2, 3, 5, 7], 2)
    wa, wb = rng.sample(["fizz", "buzz", "ping", "pong", "tick", "tock"], 2)
    name = rng.choice(["classify", "label", "tag_number"])
    code = (
        f"def {name}({x}):\n    if {x} % {a * b} == 0:\n        return '{wa}{wb}'\n    elif {x} % {a} == 0:\n"
        f"        return '{wa}'\n    elif {x} % {b} == 0:\n        return '{wb}'\n    return str({x})\n"
    )
    desc = (
        f"Write a function {name}({x}) that returns '{wa}{wb}' if {x} is divisible by both {a} and {b}, "
        f"'{wa}' if only by {a}, '{wb}' if only by {b}, and otherwise {x} as a string."
    )
    return Program("classify", name, code, desc, lambda r: (r.randint(0, 60),))


def dedupe(rng: random.Random) -> Program:
    xs, seen, out, x = (
        rng.choice(_LIST_NAMES),
        "seen",
        rng.choice(("out", "unique", "result")),
        rng.choice(_ELEM_NAMES),
    )
    name = rng.choice(["unique_in_order", "dedupe", "first_occurrences"])
    code = (
        f"def {name}({xs}):\n    {seen} = set()\n    {out} = []\n    for {x} in {xs}:\n        if {x} not in {seen}:\n"
        f"            {seen}.add({x})\n            {out}.append({x})\n    return {out}\n"
    )
    desc = f"Write a function {name}({xs}) that removes repeated elements from a list, keeping the first occurrence of each in order."
    return Program("dedupe", name, code, desc, lambda r: (_ints(r, 0, 5, 0, 8),))


def caesar(rng: random.Random) -> Program:
    s, out, c, k = (
        rng.choice(_STR_NAMES),
        rng.choice(("out", "result", "shifted")),
        rng.choice(("c", "ch")),
        rng.randint(1, 5),
    )
    name = rng.choice(["shift_letters", "caesar"])
    code = (
        f"def {name}({s}):\n    {out} = ''\n    for {c} in {s}:\n"
        f"        {out} += chr((ord({c}) - ord('a') + {k}) % 26 + ord('a'))\n    return {out}\n"
    )
    desc = f"Write a function {name}({s}) that shifts every lowercase letter of a string {k} places forward in the alphabet, wrapping from 'z' to 'a'."
    return Program("caesar", name, code, desc, lambda r: (_word(r, string.ascii_lowercase),))


TEMPLATES: dict[str, Callable[[random.Random], Program]] = {
    f.__name__: f
    for f in (
        sum_where,
        count_where,
        argmax,
        product_range,
        scale_list,
        clamp,
        count_pairs,
        running_total,
        count_vowels,
        reverse_words,
        is_palindrome,
        digit_sum,
        classify,
        dedupe,
        caesar,
    )
}
