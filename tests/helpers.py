"""Small helpers for tests that check real processes through /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence

import trio

import actors


def marker() -> str:
    """A unique token to put in a CLI's argv, so its whole tree can be found in /proc."""
    return f"llmsup-test-{uuid.uuid4().hex}"


def _state(pid: str) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2 :].split()[0].decode()


def live_processes_with(token: str) -> list[int]:
    """Pids of non-zombie processes whose command line contains ``token``.

    Zombies are dead: they hold no memory or pipes, and here PID 1 may not reap orphans.
    """
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if token.encode() in cmdline and _state(entry) not in (None, "Z"):
            found.append(int(entry))
    return found


def peak_rss_kib() -> int:
    """This process's peak resident memory (VmHWM), in KiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))


def open_fds() -> set[int]:
    """This process's open file descriptors."""
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


async def wait_until_gone(token: str, seconds: float) -> list[int]:
    """Poll until no process carries ``token``; returns what is left after ``seconds``."""
    with trio.move_on_after(seconds):
        while live_processes_with(token):  # noqa: ASYNC110 - /proc offers nothing to await
            await trio.sleep(0.02)
    return live_processes_with(token)


def python_cli(code: str, **kwargs: object) -> actors.CliSpec:
    """A CLI made of a tiny Python program (``sys.argv[1:]`` holds the prompt)."""
    return actors.command([sys.executable, "-S", "-c", code], **kwargs)  # type: ignore[arg-type]


def fake(plan: Mapping[str, object] | None = None, **kwargs: object) -> actors.CliSpec:
    return actors.fake(plan, **kwargs)  # type: ignore[arg-type]


ARGV_ECHO = "import json, sys; print(json.dumps(sys.argv[1:]))"


def argv_list(text: str) -> Sequence[str]:
    import json

    value = json.loads(text)
    assert isinstance(value, list)
    return value


MARKER_ENV = "LLMSUP_TEST_MARKER"


def live_processes_with_env(token: str) -> list[int]:
    """Pids of non-zombie processes whose environment carries ``LLMSUP_TEST_MARKER=token``.

    For CLIs whose argv does not hold the prompt (prompt on stdin): the marker travels in
    the environment, which every descendant inherits.
    """
    needle = f"{MARKER_ENV}={token}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if needle in environ.split(b"\0") and _state(entry) not in (None, "Z"):
            found.append(int(entry))
    return found


class FakeClock:
    """A clock the test moves by hand (``clock.now += 2.0``), for injected-clock tests."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@contextlib.contextmanager
def hang_guard(seconds: float) -> Iterator[None]:
    """Fail a synchronous block still running after ``seconds`` (SIGALRM; main thread only).

    The synchronous twin of ``trio.fail_after`` used as a hang guard: set it far above any
    machine's load, so it says "this hung", never "this was slow" (speed belongs in bench/).
    """

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds:g}s: hung")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
