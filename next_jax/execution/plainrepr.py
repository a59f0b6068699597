"""Exact reprs of plain containers, fast: the fast paths of `saferepr.safe_repr`.

A list/tuple/dict of numbers and short strings (possibly one level of lists/tuples down) prints with the type's
own C `repr`, which runs no user code and gives exactly what the general path would; a long list of numbers gets
its elided body from C-made reprs. Anything else returns None and takes the general path.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate, chain, compress, islice, repeat
from operator import add, is_

_PLAIN = frozenset({int, float, bool, type(None), str})
_FLAT = frozenset({list, tuple})
_PLAIN_OR_FLAT = _PLAIN | _FLAT


def _plain(x, base: type, budget: int, depth: int) -> str | None:
    """`base.__repr__(x)` for a list/tuple/dict of numbers and short strings, possibly inside lists/tuples one
    level down; None for anything else. That repr runs no user code and prints exactly what the general path
    would (no elision needed), only much faster.
    """
    found = plain_parts(x, base, budget, depth)
    return None if found is None else found[0]


def plain_parts(x, base: type, budget: int, depth: int) -> tuple[str, list, list] | None:
    """`_plain`'s text with what it printed: the items (keys and values interleaved for a dict) and the
    lists/tuples among them (whose items are all plain). Lets the tracer build a change check for free.
    """
    exact = type(x) is base  # then the type's own C methods are reached directly (faster)
    if base is dict:
        if dict.__len__(x) > budget // 6:
            return None
        items = list(chain.from_iterable(dict.items(x)))
    elif (len(x) if exact else base.__len__(x)) > budget // 2:
        return None
    else:
        items = list(x) if exact else list(base.__iter__(x))
    kinds = set(map(type, items))
    nested: list = _NOTHING
    strs = items
    if not kinds <= _PLAIN:
        if not kinds <= _PLAIN_OR_FLAT:
            return None
        nested = items if kinds <= _FLAT else list(compress(items, map(_FLAT.__contains__, map(type, items))))
        if depth < 2 or sum(map(len, nested)) > budget // 2:
            return None
        inner = list(chain.from_iterable(nested))
        inner_kinds = set(map(type, inner))
        if not inner_kinds <= _PLAIN:
            return None  # deeper nesting, or a container holding itself
        strs = items + inner
        kinds |= inner_kinds
    if str in kinds:  # a long string: repr() would copy it all before the length check
        if len(kinds) > 1:
            strs = compress(strs, map(is_, map(type, strs), repeat(str)))
        if sum(map(len, strs)) > budget:
            return None
    try:
        text = repr(x) if exact else base.__repr__(x)
    except ValueError:  # an int too long to print
        return None
    return (text, items, nested) if len(text) <= budget else None


_NOTHING: list = []  # shared, never mutated: no nested lists/tuples


_NUMBERS = frozenset({int, float, bool, type(None)})


def _numbers_prefix(x, base: type, count: int, budget: int) -> str | None:
    """The elided body of a long list/tuple whose visible items are numbers, from C-made reprs.

    Same text as the general path: a number's repr is what `_render` gives it whenever it fits (an int too
    long for its room becomes a longer placeholder there, and overflows either way).
    """
    visible = list(islice(base.__iter__(x), budget // 2 + 1))  # more than can fit: each takes >= 3 chars
    if not set(map(type, visible)) <= _NUMBERS:
        return None
    try:
        texts = list(map(repr, visible))
    except ValueError:  # an int too long to print
        return None
    # `_fit` without its Python loop: used(n), the width of the first n items joined, is
    # ends[n - 1] - 2; keep the largest n whose used(n) + 2 + len(marker) fits (both move monotonically).
    ends = list(map(add, accumulate(map(len, texts)), range(2, 2 * len(texts) + 2, 2)))
    n = bisect_right(ends, budget - len(f"...({count} more)"))
    while n < len(ends) and ends[n] + len(f"...({count - n - 1} more)") <= budget:
        n += 1
    while n > 0 and ends[n - 1] + len(f"...({count - n} more)") > budget:
        n -= 1
    return ", ".join(texts[:n] + [f"...({count - n} more)"])
