"""Where ``llmsup ask`` takes its prompt from (`read_prompt`), without processes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor._llmsup._options import BadUsage
from supervisor._llmsup._prompt import read_prompt


def _no_stdin() -> bytes:
    raise AssertionError("stdin must not be read")


def _no_file(path: str) -> bytes:
    raise AssertionError(f"no file must be read, got {path!r}")


texts = st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=1)
plain = texts.filter(lambda t: t.strip() != "" and t != "-" and not t.startswith("@"))


@given(plain)
def test_an_argument_is_the_prompt_as_given(text: str) -> None:
    assert read_prompt(text, read_stdin=_no_stdin, stdin_is_tty=False, read_file=_no_file) == text


@given(texts.filter(lambda t: ("@" + t).strip() != ""))
def test_double_at_is_a_literal_at(text: str) -> None:
    got = read_prompt("@@" + text, read_stdin=_no_stdin, stdin_is_tty=True, read_file=_no_file)
    assert got == "@" + text


@given(texts.filter(lambda t: t.rstrip("\r\n").strip() != ""))
def test_stdin_is_read_whole_without_its_trailing_newlines(text: str) -> None:
    data = text.encode()
    for arg, tty in (("-", True), (None, False)):
        got = read_prompt(arg, read_stdin=lambda: data, stdin_is_tty=tty, read_file=_no_file)
        assert got == text.rstrip("\r\n")


@given(texts.filter(lambda t: t.rstrip("\r\n").strip() != ""), st.sampled_from(["a", "d/b.txt"]))
def test_at_file_reads_that_file(text: str, name: str) -> None:
    seen: list[str] = []

    def read(path: str) -> bytes:
        seen.append(path)
        return text.encode()

    assert read_prompt("@" + name, read_stdin=_no_stdin, stdin_is_tty=False, read_file=read) == (
        text.rstrip("\r\n")
    )
    assert seen == [name]


@given(st.text(" \t\r\n\f\v\u00a0\u2003", max_size=20))
def test_a_blank_prompt_is_bad_usage_wherever_it_comes_from(blank: str) -> None:
    with pytest.raises(BadUsage, match="the prompt is empty"):
        read_prompt(blank, read_stdin=_no_stdin, stdin_is_tty=False, read_file=_no_file)
    with pytest.raises(BadUsage, match="stdin is empty"):
        read_prompt("-", read_stdin=blank.encode, stdin_is_tty=False, read_file=_no_file)
    with pytest.raises(BadUsage, match=r"'f\.txt' is empty"):
        read_prompt(
            "@f.txt", read_stdin=_no_stdin, stdin_is_tty=False, read_file=lambda _: blank.encode()
        )


def test_no_prompt_on_a_terminal_is_bad_usage() -> None:
    with pytest.raises(BadUsage, match="ask needs a prompt"):
        read_prompt(None, read_stdin=_no_stdin, stdin_is_tty=True, read_file=_no_file)


def test_unreadable_or_undecodable_sources_are_bad_usage_naming_them() -> None:
    def missing(path: str) -> bytes:
        raise FileNotFoundError(2, "No such file or directory", path)

    with pytest.raises(BadUsage, match=r"cannot read the prompt file 'gone\.txt': No such file"):
        read_prompt("@gone.txt", read_stdin=_no_stdin, stdin_is_tty=False, read_file=missing)
    with pytest.raises(BadUsage, match="stdin is not UTF-8"):
        read_prompt("-", read_stdin=lambda: b"\xff\xfe", stdin_is_tty=False, read_file=_no_file)
    with pytest.raises(BadUsage, match="needs a file name"):
        read_prompt("@", read_stdin=_no_stdin, stdin_is_tty=False, read_file=_no_file)
