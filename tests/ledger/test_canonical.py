import orjson
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import Malformed
from ledger.canonical import MAX_SAFE_INT, decode, encode

ascii_keys = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=8)
scalars = st.none() | st.booleans() | st.integers(-MAX_SAFE_INT, MAX_SAFE_INT) | st.text(max_size=20)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ascii_keys, inner, max_size=4), max_leaves=20
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(ascii_keys, values, max_size=8))
def test_encoding_is_byte_identical_to_the_rfc8785_reference(value):
    assert encode(value) == rfc8785.dumps(value)


any_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
any_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INT, MAX_SAFE_INT) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ascii_keys, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500)
@given(st.dictionaries(ascii_keys, any_values, max_size=8))
def test_decode_accepts_exactly_what_encode_writes(value):
    """decode checks with orjson, encode writes with json: over every character (controls, quotes, U+2028,
    CJK, astral) they must agree, or a record we signed would be refused, or a non-canonical one kept."""
    data = encode(value)
    assert decode(data) == value
    assert orjson.dumps(value, option=orjson.OPT_SORT_KEYS) == data
    with pytest.raises(Malformed):
        decode(b"{ " + data[1:])  # the same value, one space away from canonical


def test_known_vector_with_cjk_and_escapes():
    assert encode({"b": 1, "a": "张三\n\u2028", "c": [True, None]}) == (
        '{"a":"张三\\n\u2028","b":1,"c":[true,null]}'.encode()
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [({"x": 1.5}, "float"), ({"x": 2**53}, "outside"), ({"键": 1}, "ASCII"), ({"x": b"raw"}, "bytes")],
)
def test_values_outside_the_subset_are_refused(value, problem):
    with pytest.raises(Malformed, match=problem):
        encode(value)


def test_decode_refuses_non_canonical_bytes():
    assert decode(b'{"a":1,"b":2}') == {"a": 1, "b": 2}
    for bad in (b'{"b":2,"a":1}', b'{"a": 1}', b'{"a":1.0}', b"[1]", b"\xff"):
        with pytest.raises(Malformed):
            decode(bad)


@pytest.mark.parametrize(
    "bad",
    [
        b'{"x":9007199254740992}',  # 2^53: one past the safe range
        b'{"x":-9007199254740992}',
        '{"键":1}'.encode(),  # a non-ASCII key, in otherwise canonical bytes
        b'{"a":1,"a":2}',  # a duplicate key: two readers could disagree
        b'{"x":NaN}',
    ],
)
def test_decode_refuses_what_encode_would_refuse(bad):
    with pytest.raises(Malformed):
        decode(bad)


def test_decode_keeps_long_digit_strings_and_the_largest_safe_integer():
    assert decode(b'{"card":"12345678901234567890","x":9007199254740991}')["x"] == MAX_SAFE_INT


def test_a_big_integer_inside_a_list_or_after_other_keys_is_refused_too():
    for bad in (b'{"a":[1,9007199254740993]}', b'{"a":"0000000000000000","b":-90071992547409930}'):
        with pytest.raises(Malformed):
            decode(bad)
