"""Line framing: any chunking of a byte stream yields the same lines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors._framing import LineFramer, LineTooLong


def frame_all(chunks: list[bytes], limit: int = 1 << 20) -> list[str]:
    framer = LineFramer(limit)
    lines: list[str] = []
    for chunk in chunks:
        lines.extend(framer.feed(chunk))
    lines.extend(framer.finish())
    return lines


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


texts = st.lists(
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n")),
    max_size=8,
)


@given(lines=texts, trailing_newline=st.booleans(), cuts=st.lists(st.integers(0, 10_000)))
def test_any_chunking_yields_the_same_lines(
    lines: list[str], trailing_newline: bool, cuts: list[int]
) -> None:
    data = "\n".join(lines).encode()
    if trailing_newline and lines:
        data += b"\n"
    whole = frame_all([data])
    assert frame_all(split_at(data, cuts)) == whole
    # The text is rebuilt exactly, multibyte characters split across reads included.
    expected = data.decode().split("\n")
    if expected[-1] == "":
        expected.pop()  # nothing after the last newline is not a line
    assert whole == expected


@given(raw=st.binary(max_size=300), cuts=st.lists(st.integers(0, 400)))
def test_arbitrary_bytes_never_crash_and_chunking_is_irrelevant(
    raw: bytes, cuts: list[int]
) -> None:
    assert frame_all(split_at(raw, cuts)) == frame_all([raw])


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert frame_all([b"ok \xff\xfe end\n"]) == ["ok \ufffd\ufffd end"]


def test_multibyte_character_split_inside_is_rebuilt() -> None:
    data = "héllo €\n".encode()
    euro_start = data.index("€".encode())
    assert frame_all([data[: euro_start + 1], data[euro_start + 1 :]]) == ["héllo €"]


def test_last_line_without_newline_is_delivered() -> None:
    assert frame_all([b"a\nb"]) == ["a", "b"]


def test_carriage_return_is_not_a_separator() -> None:
    assert frame_all([b"a\rb\r\n"]) == ["a\rb\r"]


@given(limit=st.integers(1, 64), extra=st.integers(1, 64), cuts=st.lists(st.integers(0, 200)))
def test_overlong_line_raises_and_memory_stays_bounded(
    limit: int, extra: int, cuts: list[int]
) -> None:
    data = b"x" * (limit + extra)
    framer = LineFramer(limit)
    with pytest.raises(LineTooLong) as info:
        for chunk in split_at(data, cuts):
            framer.feed(chunk)
            assert framer.pending_bytes <= limit
        framer.feed(b"\n")
    assert info.value.limit == limit
    assert str(limit) in str(info.value)


def test_line_exactly_at_limit_is_fine() -> None:
    assert frame_all([b"abcd\n"], limit=4) == ["abcd"]
