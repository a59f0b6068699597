"""safe_repr renders any value boundedly without running user code; shapes detect in-place change."""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import fractions
import re
import signal
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from next_jax.execution import saferepr
from next_jax.execution.saferepr import safe_repr, type_name
from next_jax.execution.shapes import IMMUTABLE, shape_of, unchanged


class Spy:
    """Every hook that could run user code records its call and fails."""

    calls: list[str] = []

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def _called(name):  # a helper run in the class body, not a method
        def hook(self, *args, **kwargs):
            Spy.calls.append(name)
            raise RuntimeError(f"user code ran: {name}")

        return hook

    __repr__ = _called("__repr__")
    __str__ = _called("__str__")
    __eq__ = _called("__eq__")
    __hash__ = _called("__hash__")
    __len__ = _called("__len__")
    __iter__ = _called("__iter__")
    __getattr__ = _called("__getattr__")
    __format__ = _called("__format__")


@pytest.fixture(autouse=True)
def _no_spy_calls():
    Spy.calls.clear()
    yield
    assert Spy.calls == [], f"safe_repr ran user code: {Spy.calls}"


@pytest.fixture
def alarm():
    """Turn a hang into a failure: raise after 5 s."""

    def on_alarm(signum, frame):
        raise TimeoutError("safe_repr hung")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(5)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------------------------------ scalars


@pytest.mark.parametrize("k", [101, 199, 200, 4299, 4300, 5000])
def test_giant_ints_report_their_exact_digit_count(k):
    for value, digits in ((10**k, k + 1), (10**k - 1, k), (-(10**k), k + 1)):
        text = safe_repr(value, max_len=100)
        sign = "-" if value < 0 else ""
        assert text == f"{sign}<int with {digits} digits>"


def test_ints_are_never_cut_into_a_different_number():
    assert safe_repr(-(2**62), max_len=30) == "-4611686018427387904"
    assert safe_repr(2**62, max_len=18).startswith("<int with 19")
    assert safe_repr(2**62, max_len=10).startswith("<int")
    assert not re.search(r"\d{5}", safe_repr([2**62, 3], max_len=16))


def test_ints_that_fit_print_in_full_up_to_pythons_conversion_limit():
    assert safe_repr(2**70) == str(2**70)
    assert safe_repr(10**4299, max_len=10_000) == "1" + "0" * 4299  # 4300 digits: Python's limit
    assert safe_repr(10**4300, max_len=10_000) == "<int with 4301 digits>"  # int->str would raise


def test_astronomical_int_is_rendered_without_computing_its_digits(alarm):
    assert safe_repr(1 << 3_000_000).startswith("<int with ~")


def test_long_strings_and_bytes_are_cut_with_a_count():
    text = safe_repr("x" * 1000, max_len=60)
    assert len(text) <= 60
    match = re.fullmatch(r"'(x+)'\.\.\.\((\d+) more chars\)", text)
    assert match and len(match.group(1)) + int(match.group(2)) == 1000
    assert re.fullmatch(r"b'y+'\.\.\.\(\d+ more bytes\)", safe_repr(b"y" * 1000, max_len=60))


# ------------------------------------------------------------------------------------------------ containers


def test_huge_list_is_elided_with_the_count_left_out():
    text = safe_repr(list(range(1000)), max_len=80)
    assert len(text) <= 80
    match = re.fullmatch(r"\[((?:\d+, )+)\.\.\.\((\d+) more\)\]", text)
    assert match, text
    shown = match.group(1).rstrip(", ").split(", ")
    assert shown == [str(i) for i in range(len(shown))]
    assert len(shown) + int(match.group(2)) == 1000


def test_huge_dict_is_elided_too():
    text = safe_repr({i: str(i) for i in range(500)}, max_len=80)
    assert len(text) <= 80 and text.startswith("{0: '0', 1: '1'") and re.search(r"\.\.\.\(\d+ more\)}$", text)


def test_self_referencing_containers_print_like_python():
    xs = [1]
    xs.append(xs)
    assert safe_repr(xs) == repr(xs) == "[1, [...]]"
    d: dict = {"a": 1}
    d["me"] = d
    assert safe_repr(d) == "{'a': 1, 'me': {...}}"
    a: list = []
    b = [a]
    a.append(b)
    assert safe_repr(a) == "[[[...]]]"


def test_deep_nesting_is_capped(alarm):
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    text = safe_repr(deep, max_depth=4)
    assert text == "[[[[[...]]]]]"


def test_sets_render_sorted_so_output_does_not_depend_on_hash_seed():
    assert safe_repr({"pear", "apple", "fig"}) == "{'apple', 'fig', 'pear'}"
    assert safe_repr(frozenset({3, 1, 2})) == "frozenset({1, 2, 3})"
    assert safe_repr(set()) == "set()"
    assert safe_repr({'b', 2, 'a', 1}) == "{1, 2, 'a', 'b'}"  # mixed types: grouped by type


@settings(max_examples=150, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.binary(max_size=10),
    lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=5),
    max_leaves=20))
def test_builtin_values_render_as_repr_when_it_fits_and_are_bounded_otherwise(value):
    text = safe_repr(value, max_len=120)
    assert len(text) <= 120
    if len(repr(value)) <= 120:
        assert text == repr(value)


_NUMBER = st.integers() | st.integers(min_value=2**60, max_value=2**70) | st.floats() | st.booleans() | st.none()


@settings(max_examples=200, deadline=None)
@given(value=st.lists(_NUMBER, max_size=300) | st.tuples(_NUMBER, _NUMBER)
       | st.lists(st.lists(st.integers(), max_size=4) | st.text(max_size=8) | _NUMBER, max_size=60)
       | st.dictionaries(st.text(max_size=4), st.lists(st.integers(), max_size=3) | _NUMBER, max_size=30),
       max_len=st.integers(8, 300))
def test_fast_paths_print_exactly_what_the_general_path_prints(value, max_len):
    assert safe_repr(value, max_len) == general_safe_repr(value, max_len)


def general_safe_repr(value: object, max_len: int) -> str:
    """``safe_repr`` with its fast paths for plain containers and numbers switched off (the reference)."""
    saved = saferepr._plain, saferepr._numbers_prefix
    saferepr._plain = saferepr._numbers_prefix = lambda *args: None
    try:
        return safe_repr(value, max_len)
    finally:
        saferepr._plain, saferepr._numbers_prefix = saved


# ------------------------------------------------------------------------------------------------ user code


def test_user_objects_render_structurally_without_calling_user_code():
    assert safe_repr(Spy(x=1, ys=[2, 3])) == "Spy(x=1, ys=[2, 3])"
    assert safe_repr(Spy()) == "<Spy object>"
    assert safe_repr([Spy(a="b")]) == "[Spy(a='b')]"
    assert "0x" not in safe_repr(object())


def test_looping_and_raising_reprs_are_never_called(alarm):
    class Loops:
        def __repr__(self):
            while True:
                pass

    class Raises:
        def __init__(self):
            self.v = 1

        def __repr__(self):
            raise ValueError("boom")

    assert safe_repr(Loops()) == "<Loops object>"
    assert safe_repr(Raises()) == "Raises(v=1)"


def test_getattribute_properties_and_metaclasses_are_bypassed():
    class Meta(type):
        def __repr__(cls):
            Spy.calls.append("metaclass __repr__")
            return "?"

        def __getattribute__(cls, name):
            Spy.calls.append(f"metaclass getattribute {name}")
            return type.__getattribute__(cls, name)

    class Weird(metaclass=Meta):
        __slots__ = ("a", "b")

        def __getattribute__(self, name):
            Spy.calls.append(f"getattribute {name}")
            raise AttributeError(name)

        @property
        def c(self):
            Spy.calls.append("property")

    w = object.__new__(Weird)
    object.__setattr__(w, "a", [1])
    assert safe_repr(w) == "Weird(a=[1])"  # the unset slot b is skipped
    assert safe_repr(Weird) == "<class 'Weird'>"
    assert type_name(Weird) == "Weird"


def test_builtin_subclasses_are_read_through_the_base_class():
    class MyList(list):
        __iter__ = Spy.__iter__
        __len__ = Spy.__len__
        __repr__ = Spy.__repr__

    class MyDict(dict):
        items = Spy.__iter__

    class MyInt(int):
        __repr__ = Spy.__repr__
        __abs__ = Spy.__len__

    class MyStr(str):
        __getitem__ = Spy.__len__

    Point = collections.namedtuple("Point", "x y")
    assert safe_repr(MyList([1, 2])) == "MyList([1, 2])"
    assert safe_repr(MyDict(a=1)) == "MyDict({'a': 1})"
    assert safe_repr(MyInt(-(10**300)), max_len=50) == "MyInt(-<int with 301 digits>)"
    assert safe_repr(MyStr("hi")) == "MyStr('hi')"
    assert safe_repr(Point(1, [2])) == "Point(x=1, y=[2])"


def test_exceptions_render_like_builtin_exceptions():
    assert safe_repr(ZeroDivisionError("division by zero")) == "ZeroDivisionError('division by zero')"
    assert safe_repr(KeyError(Spy(k=1))) == "KeyError(Spy(k=1))"

    class MyError(Exception):
        __str__ = Spy.__str__

    assert safe_repr(MyError("bad", 2)) == "MyError('bad', 2)"


def test_stdlib_values():
    class Color(enum.Enum):
        RED = 1

    od = collections.OrderedDict(a=1, b=2)
    od.move_to_end("a")
    assert safe_repr(Color.RED) == "Color.RED"
    assert safe_repr(collections.deque([1, 2])) == "deque([1, 2])"
    assert safe_repr(collections.Counter("aab")) == "Counter({'a': 2, 'b': 1})"
    assert safe_repr(od) == "OrderedDict({'b': 2, 'a': 1})"
    assert safe_repr(collections.defaultdict(list, k=[1])) == "defaultdict(<class 'list'>, {'k': [1]})"
    assert safe_repr(fractions.Fraction(1, 3)) == "Fraction(1, 3)"
    assert safe_repr(decimal.Decimal("1.5")) == "Decimal('1.5')"
    assert safe_repr(datetime.date(2020, 1, 2)) == "datetime.date(2020, 1, 2)"
    assert safe_repr(fractions.Fraction(10**5000, 3)) == "<Fraction object>"  # its own repr fails
    assert safe_repr(len) == "<built-in function len>"
    assert safe_repr(sys) == "<module 'sys'>"
    assert safe_repr(iter([1])) == "<list_iterator object>"
    assert safe_repr(x for x in []) == "<generator object test_stdlib_values.<locals>.<genexpr>>"


# ------------------------------------------------------------------------------------------------ shapes


def test_scalars_and_tuples_of_scalars_are_immutable_shapes():
    for value in (1, "s", 2.5, None, (1, "a", (2, 3)), frozenset({1, 2})):
        assert shape_of(value) is IMMUTABLE
    assert shape_of(Spy(a=1)) is None  # user objects are always re-rendered
    assert shape_of(([1], 2)) is not IMMUTABLE  # a tuple holding a list can change


@pytest.mark.parametrize("mutate", [
    lambda v: v["xs"].append(4),
    lambda v: v["xs"].__setitem__(0, 1.0),  # equal, but prints differently: identity catches it
    lambda v: v["grid"][1].__setitem__(0, 9),
    lambda v: v["d"].__setitem__("k", [1]),
    lambda v: v["d"].__setitem__("new", 0),
    lambda v: v["pairs"][0][1].append(0),
    lambda v: v["s"].add(7),
    lambda v: v["c"].update("z"),
])
def test_shapes_see_every_visible_in_place_change(mutate):
    values = {"xs": [1, 2, 3], "grid": [[1, 2], [3, 4]], "d": {"k": 1}, "pairs": [(1, [2])], "s": {1, 2},
              "c": collections.Counter("ab")}
    shapes = {name: shape_of(v) for name, v in values.items()}
    before = {name: safe_repr(v) for name, v in values.items()}
    assert all(unchanged(s) for s in shapes.values())
    mutate(values)
    changed = {name for name, v in values.items() if safe_repr(v) != before[name]}
    assert len(changed) == 1
    assert {name for name, s in shapes.items() if not unchanged(s)} == changed


def test_changes_beyond_the_visible_prefix_do_not_count():
    xs = list(range(10_000))
    shape = shape_of(xs, max_len=100)
    text = safe_repr(xs, max_len=100)
    xs[9_000] = -1
    assert unchanged(shape) and safe_repr(xs, max_len=100) == text
