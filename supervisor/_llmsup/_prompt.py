"""Where ``llmsup ask`` takes its prompt from: the argument, stdin, or a file.

- ``ask TEXT``: the argument itself (``--`` first when it starts with ``-``).
- ``ask -``, or ``ask`` with no prompt and stdin not a terminal: all of stdin.
- ``ask @FILE``: the whole file. ``@@TEXT`` is the literal prompt ``@TEXT``.

Stdin and files have no size limit (argv caps one argument at 128 KiB) and lose their
trailing newlines only. A prompt that is empty or only whitespace is a `BadUsage` naming
where it came from. Pure apart from the reads, which are injected.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ._options import BadUsage

STDIN = "-"


def read_prompt(
    arg: str | None,
    *,
    read_stdin: Callable[[], bytes],
    stdin_is_tty: bool,
    read_file: Callable[[str], bytes] = lambda path: Path(path).read_bytes(),
) -> str:
    """The prompt ``arg`` stands for (see the module docstring)."""
    if arg is None:
        if stdin_is_tty:
            raise BadUsage(
                "ask needs a prompt: give it as an argument, '-' for stdin, @FILE, or pipe it in"
            )
        arg = STDIN
    if arg == STDIN:
        return _given(_text(read_stdin(), "stdin").rstrip("\r\n"), "the prompt read from stdin")
    if arg.startswith("@@"):
        return _given(arg[1:], "the prompt")
    if arg.startswith("@"):
        path = arg[1:]
        if not path:
            raise BadUsage("'@' needs a file name (@FILE; @@TEXT for a prompt starting with @)")
        where = f"the prompt file {path!r}"
        try:
            data = read_file(path)
        except OSError as exc:
            raise BadUsage(f"cannot read {where}: {exc.strerror or exc}") from None
        return _given(_text(data, where).rstrip("\r\n"), where)
    return _given(arg, "the prompt")


def _text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadUsage(f"{where} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _given(prompt: str, where: str) -> str:
    if not prompt.strip():
        raise BadUsage(f"{where} is empty")
    return prompt
