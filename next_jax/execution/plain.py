"""Plain values: the only data that crosses from a candidate process to the trusted side.

A plain value is built from exact built-in types only (``type(x) is int``, never a subclass): ``None``, ``bool``,
``int``, ``float``, ``complex``, ``str``, ``bytes``, ``list``, ``tuple``, ``dict``, ``set``, ``frozenset``, and
the built-in type objects themselves (``int`` passed as an argument). Anything
else the candidate produces becomes an opaque :class:`Handle` that the trusted side can pass back but never compare
by value, so a user-defined ``__eq__`` or an ``int`` subclass can never make a test pass.

The wire form is JSON of tagged lists. Encoding runs in the (untrusted) child; decoding runs on the trusted side and
validates every node, so a hostile child can at worst send wrong plain values, never objects with behaviour.
"""

from __future__ import annotations

import base64
import json
from typing import Any

MAX_DEPTH = 100
MAX_NODES = 1_000_000


class PlainError(ValueError):
    """The data is not a well-formed plain value (or exceeds the size bounds)."""


class Handle:
    """An opaque reference to a non-plain object living in a candidate process.

    Handles compare by identity only; the judge can call them or pass them back as arguments.
    """

    __slots__ = ("ident", "type_name", "_owner")

    def __init__(self, ident: int, type_name: str, owner: Any = None) -> None:
        self.ident = ident
        self.type_name = type_name
        self._owner = owner  # the judge-side proxy channel that can call into the candidate

    def __repr__(self) -> str:
        return f"<{self.type_name} object from candidate>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._owner is None:
            raise TypeError("handle is not callable here")
        return self._owner.call({"handle": self.ident}, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        owner = object.__getattribute__(self, "_owner")
        if owner is None or name.startswith("__"):
            raise AttributeError(name)
        return owner.getattr(self.ident, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in Handle.__slots__:
            object.__setattr__(self, name, value)
        elif self._owner is None:
            raise AttributeError(name)
        else:
            self._owner.setattr(self.ident, name, value)


def _float_text(x: float) -> str:
    return repr(x)


def encode(value: Any, to_handle: Any = None, *, max_nodes: int = MAX_NODES) -> Any:
    """Return the tagged JSON-able form of ``value``.

    ``to_handle(obj) -> int`` registers a non-plain object and returns its handle id; without it non-plain
    objects raise :class:`PlainError`. Numpy scalars are converted to their Python equivalents (on the child side,
    so the trusted side still sees only exact built-in types).
    """
    count = 0
    active: set[int] = set()

    def enc(x: Any, depth: int) -> Any:
        nonlocal count
        count += 1
        if count > max_nodes:
            raise PlainError("value too large")
        if depth > MAX_DEPTH:
            raise PlainError("value nested too deeply")
        t = type(x)
        if x is None:
            return None
        if t is bool:
            return x
        if t is int:
            return ["i", format(x, "x")]  # hex: no int->str digit limit, linear time
        if t is float:
            return ["f", _float_text(x)]
        if t is str:
            return x
        if t is complex:
            return ["c", _float_text(x.real), _float_text(x.imag)]
        if t is bytes:
            return ["y", base64.b64encode(x).decode("ascii")]
        if t in (list, tuple, set, frozenset, dict):
            if id(x) in active:
                raise PlainError("self-referencing container")
            active.add(id(x))
            try:
                if t is dict:
                    return ["d", [[enc(k, depth + 1), enc(v, depth + 1)] for k, v in x.items()]]
                tag = {list: "l", tuple: "t", set: "S", frozenset: "F"}[t]
                return [tag, [enc(v, depth + 1) for v in x]]
            finally:
                active.discard(id(x))
        if t is type and x in _TYPE_NAMES:  # exact metaclass: the lookup hashes by identity
            return ["T", _TYPE_NAMES[x]]
        converted = _convertible(x)
        if converted is not _NOT_SCALAR:
            return enc(converted, depth)
        if to_handle is None:
            raise PlainError(f"not a plain value: {t.__name__}")
        return ["h", to_handle(x), _type_name(t)]

    return enc(value, 0)


_NOT_SCALAR = object()
_TYPES = {t.__name__: t for t in (int, float, complex, str, bytes, bool, list, tuple, dict, set, frozenset,
                                  type(None), object, type)}
_TYPE_NAMES = {t: name for name, t in _TYPES.items()}


def _type_name(t: type) -> str:
    name = type.__dict__["__name__"].__get__(t)
    return name if isinstance(name, str) else "object"


def _convertible(x: Any) -> Any:
    """Values with a faithful plain form, by exact type: numpy scalars, ``Counter`` and ``defaultdict`` -> dict.

    Converting is safe because it happens in the child and only plain data leaves it; it keeps honest programs
    that return these types comparable (``Counter(...) == {...}`` compares as dicts in Python too).
    """
    import collections
    import sys

    t = type(x)
    if t is collections.Counter or t is collections.defaultdict:
        return dict(x)
    np = sys.modules.get("numpy")
    if np is None:
        return _NOT_SCALAR
    if t is np.bool_:
        return bool(x)
    if t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64):
        return int(x)
    if t in (np.float16, np.float32, np.float64):
        return float(x)
    return _NOT_SCALAR


def dumps(value: Any, to_handle: Any = None) -> str:
    return json.dumps(encode(value, to_handle), ensure_ascii=True, separators=(",", ":"))


def decode(data: Any, make_handle: Any = None) -> Any:
    """Validate the tagged form and rebuild exact built-in values (trusted side)."""
    count = 0

    def dec(x: Any, depth: int) -> Any:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise PlainError("value too large")
        if depth > MAX_DEPTH:
            raise PlainError("value nested too deeply")
        t = type(x)
        if x is None or t is bool or t is str:
            return x
        if t is not list or not x or type(x[0]) is not str:
            raise PlainError("malformed plain value")
        tag = x[0]
        try:
            if tag == "i" and len(x) == 2 and type(x[1]) is str and len(x[1]) <= 1_000_000:
                return int(x[1], 16)
            if tag == "f" and len(x) == 2 and type(x[1]) is str and len(x[1]) <= 64:
                return _parse_float(x[1])
            if tag == "c" and len(x) == 3 and type(x[1]) is str and type(x[2]) is str:
                return complex(_parse_float(x[1]), _parse_float(x[2]))
            if tag == "y" and len(x) == 2 and type(x[1]) is str:
                return base64.b64decode(x[1].encode("ascii"), validate=True)
            if tag in ("l", "t", "S", "F") and len(x) == 2 and type(x[1]) is list:
                items = [dec(v, depth + 1) for v in x[1]]
                return {"l": list, "t": tuple, "S": set, "F": frozenset}[tag](items)
            if tag == "d" and len(x) == 2 and type(x[1]) is list:
                out = {}
                for pair in x[1]:
                    if type(pair) is not list or len(pair) != 2:
                        raise PlainError("malformed dict item")
                    out[dec(pair[0], depth + 1)] = dec(pair[1], depth + 1)
                return out
            if tag == "T" and len(x) == 2 and x[1] in _TYPES:
                return _TYPES[x[1]]
            if tag == "h" and len(x) == 3 and type(x[1]) is int and type(x[2]) is str:
                if make_handle is None:
                    raise PlainError(f"non-plain value of type {x[2][:100]}")
                return make_handle(x[1], x[2][:100])
        except (TypeError, ValueError, RecursionError) as e:  # unhashable keys, bad base64, ...
            if isinstance(e, PlainError):
                raise
            raise PlainError(f"malformed plain value: {type(e).__name__}") from None
        raise PlainError(f"unknown plain tag {tag[:10]!r}")

    try:
        return dec(data, 0)
    except RecursionError:
        raise PlainError("value nested too deeply") from None


def _parse_float(text: str) -> float:
    return float(text)  # accepts the reprs 'nan', 'inf', '-0.0'; raises ValueError on anything else


def loads(text: str | bytes, make_handle: Any = None) -> Any:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise PlainError(f"undecodable result: {type(e).__name__}") from None
    return decode(data, make_handle)
