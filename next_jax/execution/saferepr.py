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

import sys
import types
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

# C-level descriptors read directly so that no metaclass or class attribute can intercept them.
_type_dict = type.__dict__["__dict__"].__get__
_type_mro = type.__dict__["__mro__"].__get__
_type_qualname = type.__dict__["__qualname__"].__get__
_type_name = type.__dict__["__name__"].__get__
_exc_args = BaseException.__dict__["args"].__get__
_func_qualname = types.FunctionType.__dict__["__qualname__"].__get__
_type_module = type.__dict__["__module__"].__get__
_GETSET = types.GetSetDescriptorType
_MEMBER = types.MemberDescriptorType


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


# ---------------------------------------------------------------------------------------------- objects

# Per class: (the C `__dict__` getset or None, slot member descriptors). A class's layout cannot change after
# creation, so this is safe to cache; cleared wholesale when large, since classes die with their programs.
_LAYOUTS: dict[int, tuple[type, object, tuple]] = {}
_LAYOUTS_MAX = 1024


def _layout(cls: type) -> tuple[object, tuple]:
    cached = _LAYOUTS.get(id(cls))
    if cached is not None and cached[0] is cls:
        return cached[1], cached[2]
    dict_descr = None
    slots = []
    names: set[str] = set()
    for klass in _type_mro(cls):
        for name, attr in _type_dict(klass).items():
            kind = type(attr)
            if kind is _GETSET and name == "__dict__" and dict_descr is None:
                dict_descr = attr
            elif kind is _MEMBER and name not in names and name != "__weakref__":
                names.add(name)
                slots.append((name, attr))
    if len(_LAYOUTS) >= _LAYOUTS_MAX:
        _LAYOUTS.clear()
    _LAYOUTS[id(cls)] = (cls, dict_descr, tuple(slots))
    return dict_descr, tuple(slots)


def _instance_fields(x) -> list[tuple[str, object]]:
    """(name, value) pairs from slots and the instance dict, read via C descriptors only."""
    cls = type(x)
    dict_descr, slots = _layout(cls)
    fields: list[tuple[str, object]] = []
    for name, descr in slots:
        try:
            fields.append((name, descr.__get__(x, cls)))
        except AttributeError:  # an unset slot
            pass
    if dict_descr is not None:
        try:
            inst_dict = dict_descr.__get__(x, cls)
        except Exception:  # noqa: BLE001
            inst_dict = None
        if type(inst_dict) is dict:
            fields.extend((k, v) for k, v in dict.items(inst_dict) if type(k) is str)
    return fields


def _object(x, cls: type, budget: int, depth: int, seen: set[int] | None) -> str:
    """`ClassName(a=1, b=[2])` built from the instance's own fields, or `<ClassName object>`."""
    name = type_name(cls)
    fields = _instance_fields(x)
    if not fields:
        return f"<{name} object>"
    key = id(x)
    if depth <= 0 or (seen is not None and key in seen):
        return f"{name}(...)"
    if seen is None:
        seen = set()
    seen.add(key)
    def field(pair: tuple[str, object], room: int) -> str:
        return f"{pair[0]}={_render(pair[1], room - len(pair[0]) - 1, depth - 1, seen)}"

    try:
        body = _fit(field, fields, len(fields), budget - len(name) - 2)
    finally:
        seen.discard(key)
    return f"{name}({body})"


def _exception(x: BaseException, cls: type, budget: int, depth: int, seen: set[int] | None) -> str:
    """`ValueError('bad')`: the class name and its args, as builtin exceptions print themselves."""
    args = _exc_args(x)
    name = type_name(cls)
    if type(args) is not tuple:
        return f"{name}()"
    return f"{name}({_items(iter(args), len(args), budget - len(name) - 2, depth - 1, seen or set())})"


# Reprs of these print only numbers/strings they own (no user code). Still wrapped in try: e.g. a Fraction
# of giant ints fails to print.
_TRUSTED_REPR = {
    "decimal": frozenset({"Decimal"}),
    "fractions": frozenset({"Fraction"}),
    "datetime": frozenset({"date", "datetime", "time", "timedelta", "timezone"}),
    "re": frozenset({"Pattern", "Match"}),
}


def _stdlib_class(cls: type, table: dict[str, frozenset[str]]) -> str | None:
    """The class's name if it is the very class `module.name` of a listed stdlib module (by identity)."""
    module_name = _type_module(cls)
    names = table.get(module_name) if type(module_name) is str else None
    if names is None:
        return None
    name = _type_qualname(cls)
    module = sys.modules.get(module_name)
    if name in names and module is not None and module.__dict__.get(name) is cls:
        return name
    return None


_COLLECTIONS = {"collections": frozenset({"deque", "defaultdict", "OrderedDict", "Counter"})}


def _collections_type(x, cls: type, name: str, budget: int, depth: int, seen: set[int] | None) -> str:
    """deque / defaultdict / OrderedDict / Counter, rendered through their own C iteration."""
    if name == "deque":
        if depth <= 0 or (seen is not None and id(x) in seen):
            return "deque([...])"
        seen = seen if seen is not None else set()
        seen.add(id(x))
        try:
            body = _items(cls.__iter__(x), cls.__len__(x), budget - 9, depth - 1, seen)
        finally:
            seen.discard(id(x))
        return f"deque([{body}])"
    if name == "defaultdict":
        factory = _render(cls.__dict__["default_factory"].__get__(x, cls), 40, 1, None)
        return f"defaultdict({factory}, {_container(x, dict, budget - len(factory) - 14, depth, seen)})"
    if name == "OrderedDict":  # its own order, which move_to_end can make differ from the dict's
        return _container(x, dict, budget, depth, seen, prefix=name, pairs=cls.items(x).__iter__())
    return _container(x, dict, budget, depth, seen, prefix=name)


def _enum_member(x, cls: type) -> str | None:
    enum_module = sys.modules.get("enum")
    if enum_module is None or enum_module.__dict__.get("Enum") not in _type_mro(cls):
        return None
    name = dict(_instance_fields(x)).get("_name_")
    return f"{type_name(cls)}.{name}" if type(name) is str else None


_BUILTIN_BASES = frozenset({int, float, complex, str, bytes, list, tuple, dict, set, frozenset})
_GETTERS = {
    "builtin": types.BuiltinFunctionType.__dict__["__name__"].__get__,
    "generator": types.GeneratorType.__dict__["__qualname__"].__get__,
    "method_func": types.MethodType.__dict__["__func__"].__get__,
    "module_dict": types.ModuleType.__dict__["__dict__"].__get__,
}


def _other(x, cls: type, budget: int, depth: int, seen: set[int] | None) -> str:
    """Everything without an exact-type fast path in `_render`."""
    mro = _type_mro(cls)
    if type in mro:
        return f"<class '{type_name(x)}'>"
    if cls is types.FunctionType:
        return f"<function {_func_qualname(x)}>"
    if cls is types.BuiltinFunctionType:
        return f"<built-in function {_GETTERS['builtin'](x)}>"
    if cls is types.MethodType:
        func = _GETTERS["method_func"](x)
        return f"<bound method {_func_qualname(func) if type(func) is types.FunctionType else '?'}>"
    if cls is types.ModuleType:
        name = _GETTERS["module_dict"](x).get("__name__")
        return f"<module {str.__repr__(name) if type(name) is str else '?'}>"
    if cls is types.GeneratorType:
        return f"<generator object {_GETTERS['generator'](x)}>"
    if cls is slice:
        parts = (slice.start.__get__(x), slice.stop.__get__(x), slice.step.__get__(x))
        return f"slice({_items(iter(parts), 3, budget - 7, depth - 1, seen or set())})"
    if cls is range:
        return range.__repr__(x)
    if BaseException in mro:
        return _exception(x, cls, budget, depth, seen)
    name = _stdlib_class(cls, _COLLECTIONS)
    if name is not None:
        return _collections_type(x, cls, name, budget, depth, seen)
    enum_text = _enum_member(x, cls)
    if enum_text is not None:
        return enum_text
    if _stdlib_class(cls, _TRUSTED_REPR) is not None:
        try:
            return repr(x)
        except Exception:  # noqa: BLE001 - e.g. a Fraction of giant ints
            return f"<{type_name(cls)} object>"
    for base in mro[1:]:
        if base in _BUILTIN_BASES:
            return _builtin_subclass(x, cls, base, budget, depth, seen)
    if _type_module(cls) == "builtins":
        # Iterators, views, cells...: their default reprs carry memory addresses, so name the type only.
        return f"<{type_name(cls)} object>"
    return _object(x, cls, budget, depth, seen)


def _builtin_subclass(x, cls: type, base: type, budget: int, depth: int, seen: set[int] | None) -> str:
    """A user subclass of a builtin via the base's C methods: `MyList([1, 2])`, namedtuple `P(x=1, y=2)`."""
    name = type_name(cls)
    if base is tuple:
        fields = _class_attr(cls, "_fields")
        if type(fields) is tuple and len(fields) == tuple.__len__(x) and set(map(type, fields)) <= {str}:
            inner = budget - len(name) - 2
            values = list(tuple.__iter__(x))
            pairs = [f"{f}={_render(v, inner // max(len(fields), 1), depth - 1, seen)}"
                     for f, v in zip(fields, values, strict=True)]
            return f"{name}({', '.join(pairs)})"
    if base in _BRACKETS:
        return _container(x, base, budget, depth, seen, prefix=name)
    if base is int:
        inner = _int(x, budget)
    elif base is float:
        inner = float.__repr__(x)
    elif base is complex:
        inner = complex.__repr__(x)
    elif base is str:
        inner = _str(str.__str__(x), budget)
    else:
        inner = _bytes(bytes.__getitem__(x, slice(None)), budget)
    return f"{name}({inner})"


def _class_attr(cls: type, name: str) -> object:
    """A class attribute found along the MRO without triggering descriptors; None if absent."""
    for klass in _type_mro(cls):
        found = _type_dict(klass).get(name, _MISSING)
        if found is not _MISSING:
            return found
    return None


_MISSING = object()


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
