"""Plain-value codec: exact built-in types round-trip; anything else is a handle or an error."""

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from next_jax.execution import plain

_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary()
_values = st.recursive(
    _leaves | st.complex_numbers(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.integers() | st.text(max_size=5), inner, max_size=4)
    | st.frozensets(st.integers() | st.text(max_size=3), max_size=4),
    max_leaves=20,
)


def _same(a, b) -> bool:
    """Equal and of the same exact types all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


@given(_values)
def test_round_trip_keeps_exact_types(value):
    assert _same(plain.loads(plain.dumps(value)), value)


def test_special_floats_and_giant_ints():
    for value in (float("inf"), -0.0, 10**5000, -(2**4000)):
        out = plain.loads(plain.dumps(value))
        assert out == value and type(out) is type(value)
    assert math.copysign(1.0, plain.loads(plain.dumps(-0.0))) == -1.0
    assert math.isnan(plain.loads(plain.dumps(float("nan"))))


def test_subclasses_are_not_plain():
    class Liar(int):
        def __eq__(self, other):
            return True

    with pytest.raises(plain.PlainError):
        plain.encode(Liar(3))
    seen = []
    encoded = plain.encode([Liar(3)], to_handle=lambda obj: seen.append(obj) or 7)
    assert seen and encoded == ["l", [["h", 7, "Liar"]]]
    decoded = plain.decode(encoded, make_handle=lambda ident, name: plain.Handle(ident, name))
    assert decoded[0] != 3 and type(decoded[0]) is plain.Handle


def test_self_reference_and_depth_are_bounded():
    xs: list = []
    xs.append(xs)
    with pytest.raises(plain.PlainError):
        plain.encode(xs)
    deep: list = []
    for _ in range(plain.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(plain.PlainError):
        plain.encode(deep)
    nested = "[" * 100_000 + "]" * 100_000
    with pytest.raises(plain.PlainError):
        plain.loads(nested)


@pytest.mark.parametrize("bad", [
    '["i", 12]', '["x", "1"]', '["d", [[["l", []], 1]]]', '["y", "!!"]', '{"a": 1}', '["h", 1, "T"]', "[",
    '["f", "1e999999x"]', "3",
])
def test_decoder_rejects_malformed(bad):
    with pytest.raises(plain.PlainError):
        plain.loads(bad)


def test_wire_form_is_ascii_json():
    text = plain.dumps({"k": "\ud800 snow \u2603", b"b": (1, 2.5)})
    assert text.isascii()
    json.loads(text)


def test_builtin_types_and_counters_have_plain_forms():
    import collections

    assert plain.loads(plain.dumps([int, str, type(None)])) == [int, str, type(None)]
    counted = plain.loads(plain.dumps(collections.Counter("abca")))
    assert type(counted) is dict and counted == {"a": 2, "b": 1, "c": 1}
    grouped = plain.loads(plain.dumps(collections.defaultdict(list, {1: [2]})))
    assert type(grouped) is dict and grouped == {1: [2]}

    class Meta(type):
        def __eq__(cls, other):
            return True

        __hash__ = type.__hash__

    with pytest.raises(plain.PlainError):
        plain.encode(Meta("Fake", (), {}))
