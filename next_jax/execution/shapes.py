"""Change checks for the tracer: has a value's rendering possibly changed since the last line?

A tracer re-renders every local at every line to spot in-place mutation. `shape_of` records, for values
built only from builtin scalars and containers, the objects that `safe_repr` could show (each container's
length and the identities of its visible prefix); `unchanged` then re-checks them at C speed. Identical
objects in the same places render identically, so an unchanged shape means an unchanged rendering.
`render_with_shape` gives a value's rendering and shape together, from one pass for the commonest values.
"""

from __future__ import annotations

from itertools import chain, islice
from operator import is_

from next_jax.execution.plainrepr import plain_parts
from next_jax.execution.saferepr import _COLLECTIONS, DEFAULT_MAX_DEPTH, _stdlib_class, safe_repr

IMMUTABLE = ()  # the shape of a value whose rendering cannot change
# The kids marker of a group shape `(lists, their lengths, all their items, _GROUP)`: exact lists of scalars
# (a matrix's rows), whose identities are all checked in two C-level passes instead of one Python step each.
_GROUP = ("group",)
_SCALAR_TYPES = frozenset({int, float, complex, str, bytes, bool, type(None)})
_SET_SHAPE_MAX = 512  # sets render sorted, so their visible part is not an iteration prefix: check them whole


def render_with_shape(value: object, max_len: int = 200) -> tuple[str, object]:
    """`(safe_repr(value, max_len), shape_of(value, max_len))`, in one pass for the commonest mutable values."""
    cls = type(value)
    if cls is list or cls is tuple:
        # A list/tuple of plain scalars (or of lists/tuples of them) that safe_repr prints with the builtin
        # repr: everything printed is an item or an item's item, so they make the whole shape.
        found = plain_parts(value, cls, max_len if max_len > 8 else 8, DEFAULT_MAX_DEPTH)
        if found is not None:
            text, items, nested = found
            if not nested or list not in map(type, nested):  # no lists inside: only the items can change
                return text, (IMMUTABLE if cls is tuple else (value, len(items), items, ()))
            lists = [kid for kid in nested if type(kid) is list]
            group = (lists, list(map(len, lists)), list(chain.from_iterable(lists)), _GROUP)
            return text, (value, len(items), items, (group,))
    return safe_repr(value, max_len), shape_of(value, max_len)


def shape_of(value: object, max_len: int = 200, max_depth: int = DEFAULT_MAX_DEPTH):
    """IMMUTABLE, a shape for `unchanged`, or None when only re-rendering can tell (e.g. user objects)."""
    # Every visible item costs at least two characters, so at most this many items can be visible.
    budget = [max_len // 2 + 2, max_len // 2 + 2]  # [items still possibly visible, the initial count]
    try:
        return _shape(value, max_depth, budget)
    except Exception:  # noqa: BLE001 - fall back to re-rendering
        return None


def _shape(value, depth: int, budget: list[int]):
    cls = type(value)
    budget[0] -= 1
    if cls in _SCALAR_TYPES or depth <= 0 or budget[0] < 0:
        return IMMUTABLE  # beyond the depth cap or the visible prefix, contents are not shown
    kind = _SHAPE_KINDS.get(cls) or _collections_kind(cls)
    if kind is None:
        return None
    count = len(value)
    if kind == "map":
        prefix = (list(islice(value, budget[0])), list(islice(value.values(), budget[0])))
        items = list(chain.from_iterable(islice(value.items(), budget[0])))  # in rendering order
    elif kind == "seq":
        items = prefix = list(islice(value, budget[0]))
    elif kind == "set" and count <= _SET_SHAPE_MAX:
        items = prefix = list(value)
    else:
        return None
    kids = []
    kinds = set(map(type, items))
    if kinds <= _SCALAR_TYPES:
        budget[0] -= len(items)
    elif kinds <= _FLAT_CONTAINERS and set(map(type, chain.from_iterable(items))) <= _SCALAR_TYPES:
        # Containers of scalars (rows of a matrix, pairs): one level of kids, built without recursion.
        budget[0] -= len(items) + sum(map(len, items))
        cap = budget[1]
        kids = [(item, len(item), item[:cap], ()) for item in items if type(item) is list]
    else:
        for item in items:
            kid = _shape(item, depth - 1, budget)
            if kid is None:
                return None
            if kid is not IMMUTABLE:
                kids.append(kid)
    if not kids and (cls is tuple or cls is frozenset):
        return IMMUTABLE
    return (value, count, prefix, tuple(kids))


_SHAPE_KINDS = {list: "seq", tuple: "seq", dict: "map", set: "set", frozenset: "set"}
_FLAT_CONTAINERS = frozenset({list, tuple})
# collections classes whose iteration, len and item access are those of their builtin base (or C code).
_COLLECTIONS_KINDS = {"deque": "seq", "defaultdict": "map", "OrderedDict": "map", "Counter": "map"}


def _collections_kind(cls: type) -> str | None:
    name = _stdlib_class(cls, _COLLECTIONS)
    return None if name is None else _COLLECTIONS_KINDS[name]


def unchanged(shape) -> bool:
    """Whether every object recorded in `shape` is still in place (so the rendering is the same)."""
    if shape is IMMUTABLE:
        return True
    value, count, prefix, kids = shape
    if kids is _GROUP:  # lists of scalars checked at once: their lengths, then all their items in a row
        return list(map(len, value)) == count and all(map(is_, chain.from_iterable(value), prefix))
    if len(value) != count:
        return False
    if type(prefix) is tuple:  # a mapping: (keys, values)
        if not (all(map(is_, value, prefix[0])) and all(map(is_, value.values(), prefix[1]))):
            return False
    elif not all(map(is_, value, prefix)):
        return False
    for kid in kids:
        if kid[3] is _GROUP:
            if list(map(len, kid[0])) != kid[1] or not all(map(is_, chain.from_iterable(kid[0]), kid[2])):
                return False
        elif kid[3] or type(kid[2]) is tuple:
            if not unchanged(kid):
                return False
        elif len(kid[0]) != kid[1] or not all(map(is_, kid[0], kid[2])):  # a flat kid, checked inline
            return False
    return True
