"""A bounded repr that never runs the traced program's code and never raises.

`safe_repr` renders values for execution traces. It is called on values of untrusted candidate programs, so:

- dispatch is on the exact type (`type(x) is list`), never `isinstance`, and containers are walked through
  the builtin base class's own C methods (`list.__iter__(x)`), so overridden methods of user subclasses never run;
- instances of classes not known to be safe are rendered structurally from their instance `__dict__` / slots,
  read through the C-level descriptors, as `ClassName(attr=value, ...)`: user `__repr__`/`__str__`/`__eq__`/
  properties are never invoked;
- output is bounded by `max_len` (containers are elided as `[1, 2, ...(997 more)]`), nesting by `max_depth`,
  and self-references print as Python prints them (`[1, [...]]`);
- ints too long to print (Python 3.11 refuses int->str past 4300 digits) become `<int with 5001 digits>`;
- nothing depends on memory addresses, so the same value renders the same way in every process.
"""

from __future__ import annotations

from itertools import chain

from next_jax.execution.plainrepr import _numbers_prefix, _plain

__all__ = ["safe_repr", "type_name"]

_ELLIPSIS = "..."
# Above this many bits an exact digit count (which needs 10**k) would itself be slow.
_EXACT_DIGITS_MAX_BITS = 200_000
_LOG10_2 = 0.30102999566398120
# Python 3.11's default limit on int->str conversion (sys.get_int_max_str_digits()).
_INT_STR_LIMIT = 4300
# Sets are sorted (for output that does not depend on the hash seed) when their members are of these types,
# whose comparisons are builtin, and small enough that sorting stays cheap.
_SORTABLE = frozenset({int, float, str, bytes, bool})
_SORT_MAX = 2_000

# Read through the C-level descriptor so that no metaclass can intercept it.
_type_name = type.__dict__["__name__"].__get__


DEFAULT_MAX_DEPTH = 6
_FAST_INT = 10**7  # at most 8 characters, which every max_len allows


def safe_repr(value: object, max_len: int = 200, *, max_depth: int = DEFAULT_MAX_DEPTH) -> str:
    """Render `value` in at most `max_len` characters without running user code; never raises."""
    max_len = max(max_len, 8)
    cls = type(value)
    # Fast paths for the commonest values (exact builtin types, so repr() runs no user code).
    if cls is int and -_FAST_INT < value < _FAST_INT:
        return repr(value)
    if cls is str and len(value) <= max_len:
        text = repr(value)
        if len(text) <= max_len:
            return text
    try:
        text = _render(value, max_len, max_depth, None)
    except Exception:  # noqa: BLE001 - the contract is to never raise; fall back to the bare type name.
        text = "<" + type_name(type(value)) + " object>"
    if len(text) > max_len:
        text = text[: max_len - len(_ELLIPSIS)] + _ELLIPSIS
    return text


def type_name(cls: type) -> str:
    """A class's name, read without running any metaclass code."""
    try:
        return str.__str__(_type_name(cls))
    except Exception:  # noqa: BLE001
        return "?"


# ---------------------------------------------------------------------------------------------- scalars


def _int(x: int, budget: int) -> str:
    """The digits if they fit the budget (and Python's int->str limit), else `<int with N digits>`."""
    bits = int.bit_length(x)
    if bits < 64:
        text = int.__repr__(x)
        if len(text) <= budget:
            return text
        digits = len(text) - (x < 0)
    else:
        digits = _digit_count(x, bits)
        if digits <= min(budget, _INT_STR_LIMIT):
            return int.__repr__(x)
    approx = "~" if bits > _EXACT_DIGITS_MAX_BITS else ""
    sign = "-" if x < 0 else ""
    return f"{sign}<int with {approx}{digits} digits>"


def _digit_count(x: int, bits: int) -> int:
    """Decimal digits of |x| from its bit length; exact unless x is astronomically large."""
    high = int(bits * _LOG10_2) + 1
    if bits > _EXACT_DIGITS_MAX_BITS:
        return high
    low = int((bits - 1) * _LOG10_2) + 1
    if low == high:
        return high
    return high if int.__abs__(x) >= 10 ** (high - 1) else low


def _str(x: str, budget: int) -> str:
    if len(x) <= budget:
        return str.__repr__(x)
    keep = max(budget - len(f"''...({len(x)} more chars)"), 1)
    return f"{str.__repr__(x[:keep])}...({len(x) - keep} more chars)"


def _bytes(x: bytes, budget: int) -> str:
    if len(x) <= budget:
        return bytes.__repr__(x)
    keep = max(budget - len(f"b''...({len(x)} more bytes)"), 1)
    return f"{bytes.__repr__(x[:keep])}...({len(x) - keep} more bytes)"


# ---------------------------------------------------------------------------------------------- containers

def _fit(render_one, items, count: int, budget: int) -> str:
    """Comma-join `render_one(item, room)` texts; past the budget, drop trailing ones for `...(N more)`."""
    parts: list[str] = []
    used = -2  # no separator before the first item
    for item in items:
        room = budget - used - 2
        if room <= 0:
            break
        text = render_one(item, room)
        parts.append(text)
        used += len(text) + 2
        if used > budget:
            break
    else:
        return ", ".join(parts)
    while parts and used + 2 + len(f"...({count - len(parts)} more)") > budget:
        used -= len(parts.pop()) + 2
    parts.append(f"...({count - len(parts)} more)")
    return ", ".join(parts)


def _items(iterator, count: int, budget: int, depth: int, seen: set[int]) -> str:
    return _fit(lambda item, room: _render(item, room, depth, seen), iterator, count, budget)


def _pairs(iterator, count: int, budget: int, depth: int, seen: set[int]) -> str:
    def pair(kv, room: int) -> str:
        key = _render(kv[0], room, depth, seen)
        return f"{key}: {_render(kv[1], room - len(key) - 2, depth, seen)}"

    return _fit(pair, iterator, count, budget)


def _set_members(x, base: type):
    """Members of a set, sorted when they are builtin scalars (or tuples of them), so that the output does
    not depend on the hash seed; comparing those runs no user code. Else (or on a TypeError) iteration order.
    """
    members = list(base.__iter__(x))
    if len(members) <= _SORT_MAX:
        kinds = set(map(type, members))
        if kinds == {tuple}:
            kinds = set(map(type, chain.from_iterable(members)))
        if kinds <= _SORTABLE:
            try:
                return iter(sorted(members, key=_set_order))
            except TypeError:  # e.g. tuples holding a str and an int at the same position
                pass
    return iter(members)


def _set_order(value) -> tuple:
    return (type(value).__name__, value)  # mixed types group by type instead of failing to compare


_BRACKETS = {list: ("[", "]"), tuple: ("(", ")"), dict: ("{", "}"), set: ("{", "}"), frozenset: ("{", "}")}


def _container(x, base: type, budget: int, depth: int, seen: set[int] | None, prefix: str = "",
               pairs=None) -> str:
    """Render list/tuple/dict/set/frozenset contents through `base`'s own methods.

    `prefix` names a subclass (`MyList([1])`); `pairs` overrides the (key, value) iterator of a mapping.
    """
    count = base.__len__(x)
    if base is frozenset and not prefix:
        prefix = "frozenset"
    if count == 0 and (base is set or base is frozenset):
        return f"{prefix or 'set'}()"
    opening, closing = _BRACKETS[base]
    head, tail = (prefix + "(", ")") if prefix else ("", "")
    key = id(x)
    if depth <= 0 or (seen is not None and key in seen):
        return f"{head}{opening}...{closing}{tail}"
    if pairs is None and base is not set and base is not frozenset:
        text = _plain(x, base, budget - len(head) - len(tail), depth)
        if text is not None:
            return f"{head}{text}{tail}"
        if base is not dict and count > max(budget, 0) // 2 > 0:
            text = _numbers_prefix(x, base, count, budget - len(head) - len(tail) - 2)
            if text is not None:
                return f"{head}{opening}{text}{closing}{tail}"
    if seen is None:
        seen = set()
    seen.add(key)
    try:
        inner = budget - len(head) - len(tail) - 2
        if base is dict:
            body = _pairs(pairs if pairs is not None else dict.items(x).__iter__(), count, inner, depth - 1, seen)
        elif base is set or base is frozenset:
            body = _items(_set_members(x, base), count, inner, depth - 1, seen)
        else:
            body = _items(base.__iter__(x), count, inner, depth - 1, seen)
            if base is tuple and count == 1:
                body += ","
    finally:
        seen.discard(key)
    return f"{head}{opening}{body}{closing}{tail}"


# ---------------------------------------------------------------------------------------------- dispatch


def _render(x, budget: int, depth: int, seen: set[int] | None) -> str:
    cls = type(x)
    if cls is int:
        return _int(x, budget)
    if cls is str:
        return _str(x, budget)
    if cls is bool or x is None or cls is float or cls is complex:
        return repr(x)
    if cls is list or cls is tuple or cls is dict or cls is set or cls is frozenset:
        return _container(x, cls, budget, depth, seen)
    if cls is bytes:
        return _bytes(x, budget)
    if cls is bytearray:
        return f"bytearray({_bytes(bytes(x), budget - 11)})"
    if x is Ellipsis or x is NotImplemented:
        return repr(x)
    return _other(x, cls, budget, depth, seen)


# Objects, exceptions, stdlib and builtin-subclass values (`_other`) live in objectrepr, which calls back into
# `_render`/`_container`; imported last so that those exist when objectrepr binds them. `_COLLECTIONS` and
# `_stdlib_class` are re-exported for shapes.
from next_jax.execution.objectrepr import _COLLECTIONS, _other, _stdlib_class  # noqa: E402, F401
