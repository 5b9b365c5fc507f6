"""``llmsup chat``: an interactive multi-turn session in the terminal.

Commands: ``/export FILE`` writes the history (with the CLI's session id), ``/history``
prints it, ``/quit`` (or end of input) leaves. Ctrl+C leaves cleanly: the turn in flight
is cancelled and every CLI process is stopped before the program exits.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

import trio

from actors import CliSpec, LLMError
from actors.lowlevel import LineFramer
from supervisor import RetryConfig, open_supervisor

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
) -> int:
    """Run the chat loop until /quit or end of input; returns the exit status."""

    def say(text: str, end: str = "\n") -> None:
        out.write(text + end)
        out.flush()

    lines = _Lines(stdin_fd)
    try:
        async with (
            open_supervisor(spec, retry=retry, concurrency=1) as sup,
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
                if text.startswith("/export"):
                    target = text[len("/export") :].strip()
                    if not target:
                        say("usage: /export FILE")
                        continue
                    try:
                        path = conv.export_history(target)
                    except OSError as exc:
                        say(f"cannot export to {target}: {exc}")
                        continue
                    say(f"exported {conv.turn_count} turns to {path}")
                    continue
                if text == "/history":
                    for message in conv.history:
                        say(f"[{message.timestamp:%H:%M:%S}] {message.role}: {message.content}")
                    continue
                if text.startswith("/"):
                    say(f"unknown command {text.split()[0]}; {HELP}")
                    continue
                try:
                    result = await conv.send(text)
                except LLMError as error:
                    say(f"error {error.one_line()}")
                    continue
                say(f"{spec.name}> {result.text}")
    finally:
        with trio.CancelScope(shield=True):
            await lines.aclose()
