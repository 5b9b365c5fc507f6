"""The spawn seam: what the actors need of a started CLI, and the real backend's handle.

httpcore's backend idea: the actors (`actors._process`, `actors._warm`) and the stop
sequence (`actors._spawn.stop_process_tree`) talk to a `SpawnedCli`, started by the spec's
`Spawner` (``CliSpec.backend``; None means real processes, `actors._spawn.REAL_SPAWNER`).
Everything above the spawn (framing, the adapter, the classifier, timeouts, retry, the
breaker, restarts, conversations) is the same code whichever backend started the CLI.

- The real backend: `RealCli` wraps a `trio.Process` started in its own session (see
  `actors._spawn.spawn_cli`); its tree is signalled as a process group, its leftovers are
  found through ``/proc``, and its group is recorded in the process registry
  (`actors._registry.GroupRecord`) from the spawn until `release`.
- The simulated backend (`actors._fakes._simulated`) runs the fake CLI's script in
  process, on trio's clock; it touches no registry, no subreaper and no ``/proc``.

This module names no spec type (``actors._spec`` imports it for ``CliSpec.backend``), so
`Spawner` is generic in the spec it takes.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import Protocol, TypeVar

import trio

from ._hygiene import live_members, signal_group, sweep_group
from ._registry import GroupRecord

SpecT_contra = TypeVar("SpecT_contra", contravariant=True)


class SpawnedCli(Protocol):
    """A started CLI, as the actors and the stop sequence see it.

    ``pid`` identifies it in outcomes, errors and spawn listeners (a simulated CLI's is
    negative, so it can never name a real process). The stop operations are the stop
    sequence's steps: `terminate` (SIGTERM to the tree), `kill` (SIGKILL to the tree),
    `sweep` (end what is left of the tree after its leader exited), `close_pipes`.
    """

    @property
    def pid(self) -> int: ...

    @property
    def stdin(self) -> trio.abc.SendStream | None: ...

    @property
    def stdout(self) -> trio.abc.ReceiveStream: ...

    @property
    def stderr(self) -> trio.abc.ReceiveStream: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None:
        """The exit status if the CLI exited (negative: the signal that ended it)."""
        ...

    async def wait(self) -> int:
        """Wait for the CLI's exit; its status."""
        ...

    def tree_alive(self) -> bool:
        """Whether any member of its tree still runs (its leader, or a grandchild)."""
        ...

    def terminate(self) -> None:
        """SIGTERM to the whole tree (a member that ignores it keeps running)."""
        ...

    def kill(self) -> None:
        """SIGKILL to the whole tree."""
        ...

    async def sweep(self, grace: float) -> list[int]:
        """End every leftover of the tree: terminate, wait ``grace``, kill. Returns the
        ids that survived even that (the caller logs them). Call it shielded."""
        ...

    def close_pipes(self) -> None:
        """Close our ends of its pipes at once."""
        ...

    def release(self) -> None:
        """The tree is gone: drop whatever kept track of it (the registry record)."""
        ...


class Spawner(Protocol[SpecT_contra]):
    """Starts CLIs: the backend a spec runs on (``CliSpec.backend``)."""

    async def spawn(
        self, spec: SpecT_contra, argv: Sequence[str], *, stdin_pipe: bool
    ) -> SpawnedCli:
        """Start ``argv`` for ``spec`` with stdout and stderr piped, stdin a pipe (or
        none). Raises a PERMANENT `LLMError` naming the program when it cannot start.

        Cancellation: what it starts is returned even if a cancellation arrives, which the
        caller meets at its next checkpoint, so the caller must own the result (try/finally
        with `actors._spawn.end_process`) before awaiting anything.
        """
        ...


class RealCli:
    """The real backend's `SpawnedCli`: a `trio.Process` in a session of its own.

    Its pid is its process group and session id, so the tree is signalled with ``killpg``;
    ``record`` is its entry in the process registry, dropped by `release`.
    """

    __slots__ = ("_record", "pid", "process", "stderr", "stdin", "stdout", "whole_session")

    def __init__(
        self,
        process: trio.Process,
        record: GroupRecord | None = None,
        *,
        whole_session: bool = False,
    ) -> None:
        self.process = process
        # Also sweep members that left the group but not the session (see live_members).
        self.whole_session = whole_session
        self.pid: int = process.pid
        self.stdin: trio.abc.SendStream | None = process.stdin
        assert process.stdout is not None and process.stderr is not None
        self.stdout: trio.abc.ReceiveStream = process.stdout
        self.stderr: trio.abc.ReceiveStream = process.stderr
        self._record = record

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def poll(self) -> int | None:
        return self.process.poll()

    async def wait(self) -> int:
        return await self.process.wait()

    def tree_alive(self) -> bool:
        return self.process.returncode is None or bool(
            live_members(self.pid, whole_session=self.whole_session)
        )

    def terminate(self) -> None:
        signal_group(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        signal_group(self.pid, signal.SIGKILL)

    async def sweep(self, grace: float) -> list[int]:
        return await sweep_group(self.pid, grace, whole_session=self.whole_session)

    def close_pipes(self) -> None:
        """Close our ends of the pipes at once (``aclose`` would add a yield per pipe)."""
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                assert isinstance(stream, trio.lowlevel.FdStream)  # always, on POSIX
                stream.close()

    def release(self) -> None:
        record, self._record = self._record, None
        if record is not None:
            record.forget()


__all__ = ["RealCli", "SpawnedCli", "Spawner"]
