"""``llmsup chat``: an interactive multi-turn session in the terminal.

Commands: ``/export FILE`` writes the history (with the CLI's session id), ``/history``
prints it, ``/quit`` (or end of input) leaves. Ctrl+C leaves cleanly: the turn in flight
is cancelled and every CLI process is stopped before the program exits.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

import trio

from actors import CliSpec, LLMError
from actors.lowlevel import LineFramer
from supervisor import CircuitBreaker, Conversation, RetryConfig, open_supervisor

HELP = "commands: /export FILE, /history, /quit"


class _Lines:
    """Lines typed on stdin, read without blocking the trio loop."""

    def __init__(self, fd: int) -> None:
        self._stream = trio.lowlevel.FdStream(os.dup(fd))
        self._framer = LineFramer(1024 * 1024)
        self._ready: list[str] = []
        self._eof = False

    async def readline(self) -> str | None:
        while not self._ready:
            if self._eof:
                return None
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                self._eof = True
                self._ready.extend(self._framer.finish())
            else:
                self._ready.extend(self._framer.feed(bytes(chunk)))
        return self._ready.pop(0)

    async def aclose(self) -> None:
        await self._stream.aclose()


async def run_chat(
    spec: CliSpec,
    *,
    system_prompt: str | None = None,
    history: str | None = None,
    retry: RetryConfig | None = None,
    stdin_fd: int = 0,
    out: TextIO = sys.stdout,
    fallback: Sequence[CliSpec] = (),
    breaker: CircuitBreaker | None = None,
) -> int:
    """Run the chat loop until /quit or end of input; returns the exit status.

    The system prompt is passed natively where the CLI takes one. With ``fallback``, a
    turn the CLI refuses (rate limit, auth, open breaker) is answered by the next CLI,
    which is said in a note line.
    """

    def say(text: str, end: str = "\n") -> None:
        out.write(text + end)
        out.flush()

    lines = _Lines(stdin_fd)
    try:
        async with (
            open_supervisor(
                spec, retry=retry, concurrency=1, fallback=fallback, breaker=breaker
            ) as sup,
            sup.conversation(system_prompt=system_prompt, history=history) as conv,
        ):
            resumed = f", continuing {conv.turn_count} turns" if conv.turn_count else ""
            say(f"chatting with {spec.name} ({conv.mode} mode{resumed}); {HELP}")
            while True:
                say("you> ", end="")
                line = await lines.readline()
                if line is None or line.strip() == "/quit":
                    say("" if line is None else "bye")
                    return 0
                text = line.strip()
                if not text:
                    continue
                if text.startswith("/"):
                    _command(conv, text, say)
                    continue
                try:
                    result = await conv.send(text)
                except LLMError as error:
                    say(f"error {error.one_line()}")
                    continue
                if result.fallback:
                    say(f"(note: answered by {result.cli}, a fallback)")
                say(f"{result.cli}> {result.text}")
    finally:
        with trio.CancelScope(shield=True):
            await lines.aclose()


def _command(conv: Conversation, text: str, say: Callable[[str], None]) -> None:
    """``/export FILE``, ``/history``, or an unknown command."""
    if text.startswith("/export"):
        target = text[len("/export") :].strip()
        if not target:
            say("usage: /export FILE")
            return
        try:
            path = conv.export_history(target)
        except OSError as exc:
            say(f"cannot export to {target}: {exc}")
            return
        say(f"exported {conv.turn_count} turns to {path}")
    elif text == "/history":
        for message in conv.history:
            say(f"[{message.timestamp:%H:%M:%S}] {message.role}: {message.content}")
    else:
        say(f"unknown command {text.split()[0]}; {HELP}")
