"""Structural reprs of everything but exact builtin scalars and containers, for `saferepr.safe_repr`.

Instances, exceptions, classes, functions, modules, stdlib collections/enums/trusted stdlib types and user
subclasses of builtins, all read through C-level descriptors so that no code of the traced program runs.
"""

from __future__ import annotations

import sys
import types

# C-level descriptors read directly so that no metaclass or class attribute can intercept them.
_type_dict = type.__dict__["__dict__"].__get__
_type_mro = type.__dict__["__mro__"].__get__
_type_qualname = type.__dict__["__qualname__"].__get__
_exc_args = BaseException.__dict__["args"].__get__
_func_qualname = types.FunctionType.__dict__["__qualname__"].__get__
_type_module = type.__dict__["__module__"].__get__
_GETSET = types.GetSetDescriptorType
_MEMBER = types.MemberDescriptorType

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


# Imported last: saferepr and this module call each other (`_render` <-> `_other`), and saferepr imports this
# module at its own end, so both names exist whichever of the two modules is imported first.
from next_jax.execution.saferepr import (  # noqa: E402
    _BRACKETS,
    _bytes,
    _container,
    _fit,
    _int,
    _items,
    _render,
    _str,
    type_name,
)
