"""The provider emulator on a thread of its own, for the ``llmsup_emulator`` fixture.

Its own thread and trio run, so one fixture serves any test: a trio test, a synchronous one,
and a Hypothesis test whose examples each start their own trio run. Calls into it go through
its trio token (`TrioToken.run_sync_soon` works from any thread, a trio one included).
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import trio

import actors

if TYPE_CHECKING:
    from actors import Emulator, EmulatorRule, RecordedRequest

CliName = Literal["claude", "codex", "gemini"]
CLI_NAMES: tuple[CliName, ...] = ("claude", "codex", "gemini")
_T = TypeVar("_T")

# Guards against a hang only (the emulator binds a loopback port and starts at once).
_START_GUARD_S = 120.0


def installed_cli(name: str) -> str | None:
    """The real CLI's path if it is installed (PATH, $LLMSUP_CLI_DIR, node_modules/.bin)."""
    found = actors.find_executable(name)
    if os.sep in found and os.access(found, os.X_OK):
        return found
    return shutil.which(found)


class EmulatorThread:
    """A running emulator (`actors.open_emulator`) served from a background thread.

    ``cli`` is the real CLI the test means to run; `cli_environment` and `spec` give each
    call its own scratch home under ``root``.
    """

    def __init__(self, root: Path, cli: CliName, executable: str) -> None:
        self.cli = cli
        self.executable = executable
        self._root = root
        self._homes = itertools.count(1)
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._emulator: Emulator | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="llmsup-emulator", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(_START_GUARD_S):
            raise RuntimeError(f"the emulator did not start within {_START_GUARD_S:g}s: hung")
        if self._failure is not None:
            raise RuntimeError(f"the emulator did not start: {self._failure!r}") from self._failure

    def _run(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as error:
            self._failure = error
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        async with actors.open_emulator() as emulator:
            self._emulator = emulator
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            self._ready.set()
            await self._stop.wait()

    def close(self) -> None:
        """Stop serving (closing every connection) and join the thread."""
        if self._token is not None and self._stop is not None:
            self._call(self._stop.set)
        self._thread.join(_START_GUARD_S)

    def _call(self, function: Callable[[], _T]) -> _T:
        """Run ``function`` in the emulator's trio run and return what it returned."""
        assert self._token is not None
        done = threading.Event()
        box: list[Any] = []

        def run() -> None:
            try:
                box.append((True, function()))
            except BaseException as error:
                box.append((False, error))
            done.set()

        self._token.run_sync_soon(run)
        done.wait()
        ok, value = box[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    @property
    def emulator(self) -> Emulator:
        assert self._emulator is not None
        return self._emulator

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self.emulator.base_url

    def set_rules(self, rules: Iterable[EmulatorRule]) -> None:
        """Replace the emulator's rules (see `actors.EmulatorRule`)."""
        chosen = list(rules)
        self._call(lambda: self.emulator.set_rules(chosen))

    def requests(self) -> list[RecordedRequest]:
        """The generation requests received so far (a copy)."""
        return self._call(lambda: list(self.emulator.generation_requests()))

    def scratch(self) -> Path:
        """A new, empty folder for one call's home and working directory."""
        folder = self._root / f"call-{next(self._homes)}"
        folder.mkdir(parents=True)
        return folder

    def cli_environment(self, cli: CliName | None = None) -> dict[str, str]:
        """The environment for one call of ``cli`` (default: the fixture's), with a scratch
        home of its own, pointed at this emulator (see `actors.cli_environment`)."""
        home = self.scratch() / "home"
        return actors.cli_environment(cli or self.cli, self.base_url, home, inherit=os.environ)

    def spec(self, cli: CliName | None = None, **options: Any) -> actors.CliSpec:
        """``actors.claude(...)`` (or codex, gemini) for the installed binary, with a scratch
        home and working directory, pointed at this emulator. ``options`` go to the factory."""
        name = cli or self.cli
        executable = self.executable if name == self.cli else installed_cli(name) or name
        folder = self.scratch()
        env = actors.cli_environment(name, self.base_url, folder / "home", inherit=os.environ)
        factories: dict[str, Callable[..., actors.CliSpec]] = {
            "claude": actors.claude,
            "codex": actors.codex,
            "gemini": actors.gemini,
        }
        return factories[name](executable, env=env, cwd=str(folder), **options)
