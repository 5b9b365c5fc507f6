"""The ``llmsup`` pytest plugin, registered on install by a ``pytest11`` entry point.

- ``llmsup_no_leaks``: the test fails if, once its body has run, a process it started still
  runs or it holds more file descriptors than before; the message names every leftover.
  With ``@given``, request it with ``@pytest.mark.usefixtures("llmsup_no_leaks")`` (a
  function-scoped argument trips Hypothesis' health check): it checks once, at the end.
- ``llmsup_emulator``: the provider emulator on loopback (`EmulatorThread`), for the real CLI
  named by ``@pytest.mark.llmsup_cli("claude")`` (the default); the test skips, with a one-line
  reason, when that CLI is not installed.
- ``llmsup_seed`` and ``--llmsup-seed N``: the seed for ``actors.simulated(..., seed=...)``;
  random unless given, shown in the report header and in every failed test's report.

This module imports only pytest and the standard library at load time: every pytest run in
an environment with the package installed loads it.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, cast

import pytest

if TYPE_CHECKING:
    from ._emulator import EmulatorThread
    from ._leaks import ProcessRecord

_SEED_OPTION = "--llmsup-seed"
_GRACE_OPTION = "--llmsup-leak-grace"
_SEED_KEY = pytest.StashKey[int]()
_CHECK_KEY = pytest.StashKey["LeakCheck"]()
_USED_SEED_KEY = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmsup", "llm-cli-supervisor testing kit")
    group.addoption(
        _SEED_OPTION,
        type=int,
        default=None,
        metavar="N",
        help="seed of the simulated backend (fixture llmsup_seed), to replay a failure;"
        " default: a random one, printed in the header and in every failure",
    )
    group.addoption(
        _GRACE_OPTION,
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="llmsup_no_leaks: how long a leftover process may take to finish dying (default 2)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "llmsup_cli(name): the real CLI llmsup_emulator is for (default claude)"
    )
    seed = config.getoption(_SEED_OPTION)
    config.stash[_SEED_KEY] = seed if seed is not None else random.SystemRandom().randrange(2**32)


def _seed(config: pytest.Config) -> int:
    return config.stash[_SEED_KEY]


def pytest_report_header(config: pytest.Config) -> str:
    seed = _seed(config)
    return f"llmsup: simulated-backend seed {seed} (replay: {_SEED_OPTION} {seed})"


@pytest.fixture
def llmsup_seed(request: pytest.FixtureRequest) -> int:
    """The seed for ``actors.simulated(plan, seed=llmsup_seed)`` (``--llmsup-seed``)."""
    request.node.stash[_USED_SEED_KEY] = True
    return _seed(request.config)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and item.stash.get(_USED_SEED_KEY, False):
        seed = _seed(item.config)
        report.sections.append(
            ("llmsup", f"simulated-backend seed {seed}; replay with: pytest {_SEED_OPTION} {seed}")
        )
    return report


class LeakCheck:
    """Snapshots taken just before a test's body, compared just after it."""

    def __init__(self, grace_s: float) -> None:
        from . import _leaks

        self._leaks = _leaks
        self.grace_s = grace_s
        self.token = uuid.uuid4().hex
        self.marks = (
            f"{_leaks.SUPERVISOR_MARK}={os.getpid()}",
            f"{_leaks.CHECK_TOKEN_ENV}={self.token}",
        )
        self._processes: set[tuple[int, int]] = set()
        self._fds: dict[int, str] = {}

    def start(self) -> None:
        self._processes = self._leaks.process_keys()
        self._fds = self._leaks.open_fds()

    def _leftovers(self) -> list[ProcessRecord]:
        table = self._leaks.process_table(self.marks)
        return self._leaks.leftover_processes(self._processes, table, os.getpid())

    def finish(self) -> str | None:
        """The failure message, or None when nothing was left behind."""
        import time

        processes = self._leftovers()
        deadline = time.monotonic() + self.grace_s
        while processes and time.monotonic() < deadline:  # killed ones may still be dying
            time.sleep(0.02)
            processes = self._leftovers()
        fds = self._leaks.leftover_fds(self._fds, self._leaks.open_fds())
        if not processes and not fds:
            return None
        return self._leaks.describe_leaks(processes, fds, before_fds=len(self._fds))


@pytest.fixture
def llmsup_no_leaks(request: pytest.FixtureRequest) -> Iterator[LeakCheck]:
    """Fail the test if it leaves a process running or a file descriptor open."""
    check = LeakCheck(grace_s=cast("float", request.config.getoption(_GRACE_OPTION)))
    request.node.stash[_CHECK_KEY] = check
    previous = os.environ.get(check._leaks.CHECK_TOKEN_ENV)
    os.environ[check._leaks.CHECK_TOKEN_ENV] = check.token
    try:
        yield check
    finally:
        if previous is None:
            os.environ.pop(check._leaks.CHECK_TOKEN_ENV, None)
        else:
            os.environ[check._leaks.CHECK_TOKEN_ENV] = previous


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    # The snapshots bracket the body (pytest-trio's async fixtures included), so what other
    # fixtures start in their set-up and stop in their teardown is not counted.
    check = item.stash.get(_CHECK_KEY, None)
    if check is None:
        return (yield)
    check.start()
    result = yield  # a failing test keeps its own failure
    message = check.finish()
    if message is not None:
        pytest.fail(message, pytrace=False)
    return result


@pytest.fixture
def llmsup_emulator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmulatorThread]:
    """The provider emulator on loopback, for the real CLI of ``@pytest.mark.llmsup_cli``."""
    from ._emulator import CLI_NAMES, EmulatorThread, installed_cli

    marker = request.node.get_closest_marker("llmsup_cli")
    cli = marker.args[0] if marker is not None and marker.args else "claude"
    if cli not in CLI_NAMES:
        raise pytest.UsageError(f"llmsup_cli: unknown CLI {cli!r}; known: {', '.join(CLI_NAMES)}")
    executable = installed_cli(cli)
    if executable is None:
        pytest.skip(
            f"real {cli} not installed (looked on PATH, in $LLMSUP_CLI_DIR and"
            " node_modules/.bin): npm install it to run this test"
        )
    emulator = EmulatorThread(tmp_path_factory.mktemp(f"llmsup-{cli}"), cli, executable)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.close()
