"""`simulated()`: the fake CLI's plan, run in process on trio's clock (the simulated backend).

`actors.simulated(plan, dialect=..., seed=0)` returns a `CliSpec` whose ``backend`` runs
the fake CLI's pure script (`actors._fakes._script.script`) in process instead of starting
a program: its stdout and stderr are in-memory byte streams, its sleeps are `trio.sleep`,
so under ``autojump_clock`` a 10-minute hang costs nothing. Everything above the spawn is
the same code as for a real process: framing, the adapter, the classifier, timeouts,
retry, the breaker, restarts, conversations.

When to use which backend:

- ``actors.simulated(plan)``: property tests and fault scenarios by the hundred; runs in
  microseconds of CPU and no wall-clock time under ``trio.testing.MockClock(autojump_threshold=0)``;
  deterministic (below).
- ``actors.fake(plan)``: the same plan in a real process: what only a process shows
  (pipes, signals, process groups, leftovers, file descriptors).
- the real CLI against the provider emulator: what the real binary prints.

Process-group hygiene is the one thing the simulated backend cannot test: no process
exists, so nothing touches the process registry, the subreaper or ``/proc``, and a leak of
a real tree cannot happen. Run the same test once on ``actors.fake`` for that.

Process-only faults are approximated, not rejected:

- ``ignore_sigterm``: the stop sequence's SIGTERM step is ignored, so it escalates to
  SIGKILL (which cancels the script) after the grace period, as for a process.
- ``grandchild_holds_stdout_s`` (and ``grandchild_ignores_sigterm``): an in-process
  "grandchild" keeps stdout and stderr open for that many seconds after the start, so the
  reader sees no EOF at the CLI's exit; the stop sequence's sweep ends it (SIGTERM, which
  it may ignore, then SIGKILL).

Stopping a simulated CLI (SIGTERM/SIGKILL equivalents) cancels its script; its exit status
is then ``-15``/``-9``, and ``-13`` (SIGPIPE) when it wrote to a pipe we closed.

Deterministic: the same plan and seed give the same output for each call. A call's
session id (when the plan gives none) is drawn from the seed, the prompt and how many
earlier calls had that prompt, so it does not depend on the order concurrent calls start.
The call count (``calls`` rules, ``fail_first``) is kept in memory per spec (shared by the
specs `resume` derives from it); in a concurrent fan-out "the n-th call" is the n-th to
start, which is trio's scheduling order (deterministic under Hypothesis, where trio's
scheduler is seeded).
"""

from __future__ import annotations

import itertools
import json
import logging
import signal
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import trio

from .._backend import SpawnedCli
from .._channels import send_soon
from .._clis._adapters import adapter_for
from .._clis._classify import GENERIC_CLASSIFIER
from .._clis._claude import CLAUDE_PERMITTED_TOOLS, ClaudeAdapter, ClaudeClassifier
from .._clis._codex import CodexAdapter, CodexClassifier
from .._clis._gemini import GeminiAdapter, GeminiClassifier, gemini_stderr_watch
from .._spec import DEFAULT_MAX_LINE_BYTES, CliSpec, PromptVia, SessionSupport, WarmLaunch
from . import _script
from ._plan import FaultPlan

logger = logging.getLogger("llmsup.simulated")

# Chunks a simulated pipe holds before a write waits (a real pipe holds 64 KiB).
PIPE_CHUNKS = 16
_MEMORY_STATE_DIR = "(simulated: counted in memory)"
SIMULATED_ARGV0 = "llmsup-simulated"


class _PipeReader(trio.abc.ReceiveStream):
    """Our end of a simulated stdout/stderr pipe: bytes from a memory channel."""

    def __init__(self, channel: trio.MemoryReceiveChannel[bytes]) -> None:
        self._channel = channel
        self._rest = b""

    def receive_ready(self, max_bytes: int) -> bytes | None:
        """What the "pipe" holds now (``b""`` at EOF), or None if nothing: no yield.

        The simulated twin of the real pipe's fast read (`actors._spawn.PipeReads`), which
        bounds how many such reads run in a row.
        """
        if not self._rest:
            try:
                self._rest = self._channel.receive_nowait()
            except trio.WouldBlock:
                return None
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return b""
        data, self._rest = self._rest[:max_bytes], self._rest[max_bytes:]
        return data

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._rest:
            await trio.lowlevel.checkpoint()
        else:
            try:
                self._rest = await self._channel.receive()
            except trio.EndOfChannel:
                return b""
        size = len(self._rest) if max_bytes is None else max_bytes
        data, self._rest = self._rest[:size], self._rest[size:]
        return data

    def close(self) -> None:
        self._channel.close()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()


class _PipeWriter(trio.abc.SendStream):
    """Our end of a simulated stdin pipe."""

    def __init__(self, channel: trio.MemorySendChannel[bytes]) -> None:
        self._channel = channel

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            await self._channel.send(bytes(data))
        else:
            await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        self._channel.close()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()


class _Grandchild:
    """A simulated grandchild: holds the pipes open until its time is up or it is killed."""

    def __init__(self, ignores_sigterm: bool) -> None:
        self.ignores_sigterm = ignores_sigterm
        self.scope = trio.CancelScope()
        self.done = trio.Event()


class _Plan:
    """One simulated plan: the validated script plan, its dialect, seed and call count."""

    def __init__(self, plan: dict[str, Any], dialect: str, seed: int) -> None:
        self.plan = plan
        self.dialect = dialect
        self.seed = seed
        self.counter = _script.CallCounter()
        self.spawned = 0

    def process_seed(self, pid: int) -> int:
        """A serving process's rng seed (one session for all its turns, as a process)."""
        return (self.seed * 1_000_003 - pid) & ((1 << 63) - 1)

    def call_seed(self, prompt: str, prompt_calls: int) -> int:
        """The call's rng seed: from the spec's seed, the prompt and its repeat number."""
        digest = zlib.crc32(_script.encode(prompt))
        return (self.seed * 1_000_003 + digest * 7919 + prompt_calls) & ((1 << 63) - 1)


class SimulatedCli:
    """A `SpawnedCli` that runs the fake's script in a trio system task."""

    def __init__(self, state: _Plan, plan: dict[str, Any], stdin_pipe: bool, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._state = state
        self._plan = plan
        out_send, out_receive = trio.open_memory_channel[bytes](PIPE_CHUNKS)
        err_send, err_receive = trio.open_memory_channel[bytes](PIPE_CHUNKS)
        self._out, self._err = out_send, err_send
        self.stdout = _PipeReader(out_receive)
        self.stderr = _PipeReader(err_receive)
        self.stdin: _PipeWriter | None = None
        self._stdin: trio.MemoryReceiveChannel[bytes] | None = None
        if stdin_pipe:
            in_send, in_receive = trio.open_memory_channel[bytes](PIPE_CHUNKS)
            self.stdin, self._stdin = _PipeWriter(in_send), in_receive
        self._main = trio.CancelScope()
        self._signal = 0
        self._ignores_sigterm = False
        self._grandchildren: list[_Grandchild] = []
        self._exited = trio.Event()

    # -- SpawnedCli

    def poll(self) -> int | None:
        return self.returncode

    async def wait(self) -> int:
        if self.returncode is not None:  # exited (at `start`, often): no scheduler trip
            await trio.lowlevel.checkpoint_if_cancelled()
            return self.returncode
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    def tree_alive(self) -> bool:
        return self.returncode is None or any(not g.done.is_set() for g in self._grandchildren)

    def terminate(self) -> None:
        if self.returncode is None and not self._ignores_sigterm:
            self._signal = self._signal or signal.SIGTERM
            self._main.cancel()
        for child in self._grandchildren:
            if not child.ignores_sigterm:
                child.scope.cancel()

    def kill(self) -> None:
        if self.returncode is None:
            self._signal = signal.SIGKILL
            self._main.cancel()
        for child in self._grandchildren:
            child.scope.cancel()

    async def sweep(self, grace: float) -> list[int]:
        left = [child for child in self._grandchildren if not child.done.is_set()]
        if not left:
            return []
        self.terminate()
        with trio.move_on_after(max(grace, 0.0)):
            for child in left:
                await child.done.wait()
        self.kill()
        for child in left:
            await child.done.wait()  # cancelled: ends at once
        return []

    def close_pipes(self) -> None:
        self.stdout.close()
        self.stderr.close()
        if self.stdin is not None:
            self.stdin.close()

    def release(self) -> None:
        """Nothing to release: a simulated CLI is in no registry."""

    # -- the "process"

    def start(self, argv: Sequence[str], prompt_from_stdin: bool) -> None:
        """Start the "process": run its script here as far as it goes without waiting.

        Speed trick (a task, a nursery and a scheduler trip less per short call): a call
        whose prompt is in its argv runs its script at once, up to its exit or to the first
        action that must wait (a sleep, a hang, a grandchild, a full pipe); a system task
        plays the rest. Its output and exit status are the same either way, at the same
        simulated time.
        """
        rest: Iterator[_script.Action] | None = None
        if (
            not prompt_from_stdin
            and "--serve" not in argv
            and not self._plan["serve"]
            and not self._plan["startup_s"]
        ):
            rest = self._run_eagerly(argv)
            if rest is None:
                return  # it exited
        trio.lowlevel.spawn_system_task(
            self.run, tuple(argv), prompt_from_stdin, rest, name=f"{SIMULATED_ARGV0}[{self.pid}]"
        )

    def _run_eagerly(self, argv: Sequence[str]) -> Iterator[_script.Action] | None:
        """Play the script's steps that need no wait; the rest of them, or None at the exit."""
        try:
            steps = iter(self._call_steps(_prompt_arg(argv)))
            for action in steps:
                if isinstance(action, _script.Out | _script.Err):
                    if action.data:
                        pipe = self._out if isinstance(action, _script.Out) else self._err
                        try:
                            pipe.send_nowait(action.data)
                        except trio.WouldBlock:
                            return itertools.chain((action,), steps)
                elif isinstance(action, _script.Exit):
                    self._exit(action.code)
                    return None
                elif isinstance(action, _script.IgnoreSigterm):
                    self._ignores_sigterm = True
                else:
                    return itertools.chain((action,), steps)
        except Exception as exc:  # a bug in the script: the task reports it (below)
            return _raising(exc)
        self._exit(0)
        return None

    def _exit(self, code: int) -> None:
        """The exit: the process's own pipe ends close (a grandchild may hold them)."""
        self._out.close()
        self._err.close()
        if self._stdin is not None:
            self._stdin.close()
        self.returncode = code
        self._exited.set()

    def _call_steps(self, prompt: str) -> Iterable[_script.Action]:
        """A one-shot call's script for ``prompt`` (counted as the spec's next call)."""
        call_index, prompt_calls = self._state.counter.record(prompt)
        return _script.script(
            self._plan,
            prompt,
            call_index,
            self._state.dialect,
            self._state.call_seed(prompt, prompt_calls),
            prompt_calls=prompt_calls,
        )

    async def run(
        self,
        argv: Sequence[str],
        prompt_from_stdin: bool,
        rest: Iterable[_script.Action] | None = None,
    ) -> None:
        """The process's life (a system task: it must not raise); ``rest``: what is left
        of a script `start` began."""
        try:
            async with trio.open_nursery() as nursery:
                self._exit(await self._main_program(nursery, argv, prompt_from_stdin, rest))
        finally:
            self._out.close()
            self._err.close()
            if self.returncode is None:  # the run itself is ending
                self.returncode = -signal.SIGKILL
                self._exited.set()

    async def _main_program(
        self,
        nursery: trio.Nursery,
        argv: Sequence[str],
        prompt_from_stdin: bool,
        rest: Iterable[_script.Action] | None,
    ) -> int:
        with self._main:
            try:
                if rest is None and self._plan["startup_s"]:
                    await trio.sleep(self._plan["startup_s"])  # start-up, before the prompt
                if rest is not None:
                    steps = rest
                elif "--serve" in argv or self._plan["serve"]:
                    return await self._serve(nursery, argv)
                else:
                    steps = self._call_steps(await self._read_prompt(argv, prompt_from_stdin))
                status = await self._play(nursery, steps)
                return 0 if status is None else status
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return -signal.SIGPIPE  # it wrote to a pipe we closed
            except Exception as exc:  # a bug in the script: say so, as a crashed CLI
                logger.exception("simulated CLI %d failed", self.pid)
                await self._err.send(_script.encode(f"{SIMULATED_ARGV0}: internal error: {exc}\n"))
                return 70
        return -self._signal

    async def _read_prompt(self, argv: Sequence[str], from_stdin: bool) -> str:
        if not from_stdin:
            return _prompt_arg(argv)
        assert self._stdin is not None
        data = bytearray()
        async for chunk in self._stdin:
            data += chunk
        return data.decode("utf-8", "surrogateescape")

    async def _serve(self, nursery: trio.Nursery, argv: Sequence[str]) -> int:
        assert self._stdin is not None
        if "--session-id" in argv:
            self._plan = {**self._plan, "session_id": argv[argv.index("--session-id") + 1]}
        status = await self._play(nursery, _script.process_actions(self._plan))
        if status is not None:
            return status
        answered = 0
        pending = bytearray()
        async for chunk in self._stdin:
            pending += chunk
            *lines, rest = pending.split(b"\n")
            pending = bytearray(rest)
            for line in lines:
                if not line.strip():
                    continue
                status, asked = await self._serve_line(nursery, bytes(line), answered)
                if status is not None:
                    return status
                answered += asked
        status = await self._play(nursery, _script.serve_end(self._plan))
        return 0 if status is None else status

    async def _serve_line(
        self, nursery: trio.Nursery, line: bytes, answered: int
    ) -> tuple[int | None, int]:
        prompt, actions = _script.serve_actions(self._plan, answered, line)
        status = await self._play(nursery, actions)
        if status is not None or prompt is None:
            return status, 0
        call_index, prompt_calls = self._state.counter.record(prompt)
        steps = _script.script(
            self._plan,
            prompt,
            call_index,
            self._state.dialect,
            self._state.process_seed(self.pid),
            prompt_calls=prompt_calls,
            serve=True,
            first_turn=answered == 0,
        )
        return await self._play(nursery, steps), 1

    async def _play(self, nursery: trio.Nursery, steps: Iterable[_script.Action]) -> int | None:
        """Execute actions; the exit status if one ended the process, else None."""
        for action in steps:
            if isinstance(action, _script.Out):
                if action.data:
                    await send_soon(self._out, action.data)
            elif isinstance(action, _script.Err):
                if action.data:
                    await send_soon(self._err, action.data)
            elif isinstance(action, _script.Sleep):
                await trio.sleep(action.seconds)
            elif isinstance(action, _script.Exit):
                return action.code
            elif isinstance(action, _script.Hang):
                await trio.sleep_forever()
            elif isinstance(action, _script.IgnoreSigterm):
                self._ignores_sigterm = True
            elif isinstance(action, _script.Grandchild):
                self._fork(nursery, action)
        return None

    def _fork(self, nursery: trio.Nursery, action: _script.Grandchild) -> None:
        child = _Grandchild(action.ignores_sigterm)
        self._grandchildren.append(child)
        nursery.start_soon(
            _hold_pipes, child, action.holds_stdout_s, self._out.clone(), self._err.clone()
        )


def _prompt_arg(argv: Sequence[str]) -> str:
    return argv[-1] if "--" in argv[:-1] else ""


def _raising(exc: Exception) -> Iterator[_script.Action]:
    """Steps that raise ``exc`` when played (a script bug `start` met, for the task)."""
    raise exc
    yield  # a generator


async def _hold_pipes(
    child: _Grandchild,
    seconds: float,
    out: trio.MemorySendChannel[bytes],
    err: trio.MemorySendChannel[bytes],
) -> None:
    try:
        with child.scope:
            await trio.sleep(seconds)
    finally:
        out.close()
        err.close()
        child.done.set()


class SimulatedSpawner:
    """The simulated backend (`Spawner`): each spawn runs the plan's script in process."""

    def __init__(self, state: _Plan, plan: dict[str, Any]) -> None:
        self._state = state
        self._plan = plan

    async def spawn(self, spec: CliSpec, argv: Sequence[str], *, stdin_pipe: bool) -> SpawnedCli:
        # A cancellation here starts nothing; otherwise no scheduler trip (one per call).
        await trio.lowlevel.checkpoint_if_cancelled()
        self._state.spawned += 1
        cli = SimulatedCli(self._state, self._plan, stdin_pipe, pid=-self._state.spawned)
        from_stdin = stdin_pipe and spec.prompt_via == "stdin" and "--serve" not in argv
        cli.start(argv, from_stdin)
        return cli


def _script_plan(plan: FaultPlan, **updates: object) -> dict[str, Any]:
    raw = json.loads(plan.to_json())
    raw.update(updates)
    if raw.get("state_dir") is None and plan.needs_count():
        raw["state_dir"] = _MEMORY_STATE_DIR  # the script asks for one; we count in memory
    try:
        return _script.validate_plan(raw)
    except _script.PlanError as exc:
        raise ValueError(f"bad fault plan: {exc}") from None


def simulated(
    plan: FaultPlan | Mapping[str, object] | None = None,
    *,
    dialect: str = "native",
    seed: int = 0,
    name: str | None = None,
    prompt_via: PromptVia | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> CliSpec:
    """A spec that runs the fake CLI's ``plan`` in process, on trio's clock.

    The same plan as `actors.fake` takes (a `FaultPlan` or a mapping), rendered in
    ``dialect`` ("native", "claude", "codex" or "gemini") and parsed by that CLI's own
    adapter and classifier. ``seed`` makes every random choice (session ids) reproducible.
    See the module docstring for what it approximates and when to use it.
    """
    if dialect not in _script.DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(_script.DIALECTS)}, got {dialect!r}")
    model = FaultPlan.model_validate(plan or {})
    state = _Plan(_script_plan(model), dialect, seed)
    default_name = "fake" if dialect == "native" else dialect
    return _spec(state, model, name or default_name, prompt_via, max_line_bytes, resume=None)


def _spec(
    state: _Plan,
    model: FaultPlan,
    name: str,
    prompt_via: PromptVia | None,
    max_line_bytes: int,
    resume: str | None,
) -> CliSpec:
    """The spec of ``state``'s plan (continuing session ``resume`` if given)."""
    dialect = state.dialect
    via: PromptVia = prompt_via or ("arg" if dialect == "native" else "stdin")
    plan = state.plan
    if resume is not None:
        plan = _script_plan(model, session_id=resume)
    backend = SimulatedSpawner(state, plan)

    def resumed(session_id: str) -> CliSpec:
        return _spec(state, model, name, prompt_via, max_line_bytes, resume=session_id)

    def warm(session_id: str | None) -> WarmLaunch:
        # The served plan is the spec's (with its session id, if resumed).
        argv: tuple[str, ...] = (SIMULATED_ARGV0, "--dialect", dialect, "--serve")
        if session_id:
            argv += ("--session-id", session_id)
        return WarmLaunch(argv=argv, encode_turn=_serve_request)

    session = SessionSupport(resume=resumed, warm=warm if dialect == "native" else None)
    extra: dict[str, Any] = {}
    if dialect == "native":
        extra.update(
            adapter_factory=adapter_for("text" if model.format == "text" else "jsonl"),
            classifier=GENERIC_CLASSIFIER,
        )
    elif dialect == "claude":
        extra.update(
            adapter_factory=ClaudeAdapter,
            classifier=ClaudeClassifier(),
            permitted_tools=CLAUDE_PERMITTED_TOOLS,
        )
    elif dialect == "codex":
        extra.update(adapter_factory=CodexAdapter, classifier=CodexClassifier(resume=resume))
    else:
        extra.update(
            adapter_factory=GeminiAdapter,
            classifier=GeminiClassifier(resume=resume),
            stderr_watch=gemini_stderr_watch,
        )
    return CliSpec(
        name=name,
        argv=(SIMULATED_ARGV0, "--dialect", dialect),
        prompt_via=via,
        prompt_prefix_args=("--",) if via == "arg" else (),
        max_line_bytes=max_line_bytes,
        session=session,
        backend=backend,
        inherit_env=False,  # no child process: nothing inherits, nothing secret to redact
        **extra,
    )


def _serve_request(prompt: str) -> bytes:
    return (json.dumps({"prompt": prompt}) + "\n").encode()


__all__ = ["SimulatedCli", "SimulatedSpawner", "simulated"]
