"""Few-shot exemplars for iteration 0 of self-training (written for this project).

Each exemplar is a small repair example with a rationale that reads the trace: it cites the values the
tracer records (written `name=value` in backticks, exactly as the inline trace shows them; a test checks
that every cited value appears in the rendered trace) and ends with the fixed program.
"""

from __future__ import annotations

import dataclasses

from next_jax.data.example import Provenance, RepairExample
from next_jax.data.prompts import EXEMPLAR_SEPARATOR, build_prompt, format_target
from next_jax.data.trace_cache import TraceFn


@dataclasses.dataclass(frozen=True)
class Exemplar:
    example: RepairExample
    rationale: str
    fixed_code: str


def _example(name: str, description: str, code: str, entry_point: str, test: str) -> RepairExample:
    return RepairExample(
        id=f"exemplar/{name}",
        problem_id=f"exemplar/{name}",
        description=description,
        buggy_code=code,
        entry_point=entry_point,
        tests=(test,),
        hidden_tests=(test,),
        failing_tests=(0,),
        failure_type="assertion",
        provenance=Provenance("exemplar", "human"),
    )


EXEMPLARS: tuple[Exemplar, ...] = (
    Exemplar(
        _example(
            "sum_even",
            "Write a function sum_even(nums) that returns the sum of the even numbers in a list.",
            "def sum_even(nums):\n    total = 0\n    for n in nums:\n        if n % 2 == 1:\n            total += n\n"
            "    return total\n",
            "sum_even",
            "assert sum_even([1, 2, 3, 4]) == 6",
        ),
        "The function should add up the even numbers, so for [1, 2, 3, 4] it should return 2 + 4 = 6, but the "
        "trace ends with `__return__=4`. The running sum is already `total=1` right after the first element "
        "`n=1`, and its only other value is `total=4`: the odd numbers 1 and 3 are the ones being added. The "
        "condition `n % 2 == 1` is true for odd numbers; to keep the even ones it must be `n % 2 == 0`.",
        "def sum_even(nums):\n    total = 0\n    for n in nums:\n        if n % 2 == 0:\n            total += n\n"
        "    return total\n",
    ),
    Exemplar(
        _example(
            "count_pairs",
            "Write a function count_pairs(xs, target) that counts the pairs of positions i < j such that "
            "xs[i] + xs[j] == target.",
            "def count_pairs(xs, target):\n    count = 0\n    for i in range(len(xs)):\n"
            "        for j in range(i, len(xs)):\n            if xs[i] + xs[j] == target:\n"
            "                count += 1\n    return count\n",
            "count_pairs",
            "assert count_pairs([1, 3, 2, 2], 4) == 2",
        ),
        "Only two pairs of positions add up to 4: (0, 1) with 1 + 3 and (2, 3) with 2 + 2, but the trace ends "
        "with `__return__=4`. The inner loop starts at `j=0` while `i=0`: j starts at i, so every element is "
        "also paired with itself. When i and j are both 2, the sum 2 + 2 matches and the count goes to "
        "`count=2`, counting a pair that is not allowed (and the same happens again at position 3). The inner "
        "loop has to start after i, at `range(i + 1, len(xs))`.",
        "def count_pairs(xs, target):\n    count = 0\n    for i in range(len(xs)):\n"
        "        for j in range(i + 1, len(xs)):\n            if xs[i] + xs[j] == target:\n"
        "                count += 1\n    return count\n",
    ),
    Exemplar(
        _example(
            "reverse_words",
            "Write a function reverse_words(s) that reverses the order of the space-separated words of a string.",
            "def reverse_words(s):\n    words = s.split(' ')\n    words.reverse()\n    return ' '.join(s)\n",
            "reverse_words",
            "assert reverse_words('hello big world') == 'world big hello'",
        ),
        "After the second line the trace shows `words=['world', 'big', 'hello']`, which is already the right "
        "order. The result is `__return__='h e l l o   b i g   w o r l d'`: the letters of the input separated by "
        "spaces. The last line joins `s`, the original string, character by character, instead of the "
        "reversed list `words`.",
        "def reverse_words(s):\n    words = s.split(' ')\n    words.reverse()\n    return ' '.join(words)\n",
    ),
    Exemplar(
        _example(
            "first_repeated",
            "Write a function first_repeated(text) that returns the first character that occurs a second time "
            "in a string, or None if no character repeats.",
            "def first_repeated(text):\n    seen = []\n    for ch in text:\n        if ch in seen:\n"
            "            return ch\n        seen.append(ch)\n    return seen[len(seen)]\n",
            "first_repeated",
            "assert first_repeated('abc') is None",
        ),
        "No character of 'abc' repeats, so the loop ends with `seen=['a', 'b', 'c']` and the last line runs. "
        "It indexes the list with `len(seen)`, which is 3, one past the last position, so the trace ends with "
        "`__exception__=IndexError('list index out of range')` there. When nothing repeats the function "
        "should simply return None.",
        "def first_repeated(text):\n    seen = []\n    for ch in text:\n        if ch in seen:\n"
        "            return ch\n        seen.append(ch)\n    return None\n",
    ),
)


def few_shot_prefix(fmt: str, tracer: TraceFn, exemplars: tuple[Exemplar, ...] = EXEMPLARS) -> str:
    """The exemplars rendered as prompt + target pairs, to put before an iteration-0 prompt."""
    shots = []
    for ex in exemplars:
        prompt = build_prompt(ex.example, fmt, tracer=tracer)
        shots.append(prompt.text + format_target(ex.rationale, ex.fixed_code))
    return EXEMPLAR_SEPARATOR.join(shots) + EXEMPLAR_SEPARATOR
