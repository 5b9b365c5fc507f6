"""Long-lived children under OTP restart rules, and restart-intensity escalation."""

from __future__ import annotations

import itertools

import pytest
import trio
import trio.testing

from supervisor import (
    LLMError,
    RestartBackoff,
    RestartIntensity,
    RestartIntensityExceeded,
    RestartType,
    RetryConfig,
    open_supervisor,
)

from ..helpers import fake, live_processes_with, marker

QUICK = RestartBackoff(min_backoff_s=0.1, max_backoff_s=1.0, random_factor=0.0)


class Boom(Exception):
    pass


async def test_a_crash_looping_child_escalates_and_fails_the_supervisor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs = 0

    async def crashes() -> None:
        nonlocal runs
        runs += 1
        raise Boom(f"crash number {runs}")

    with pytest.raises(RestartIntensityExceeded) as info:
        async with open_supervisor(
            fake(), restart_intensity=RestartIntensity(max_restarts=3, period_s=5.0)
        ) as sup:
            await sup.start_child(crashes, name="warm-claude", backoff=QUICK)
            await trio.sleep_forever()  # cancelled by the escalation
    error = info.value
    assert runs == 4  # the first run and three restarts; the fourth restart is refused
    assert "restart intensity exceeded" in error.message
    assert "limit 3 in 5s" in error.message
    assert "warm-claude: crash number 4" in error.message
    assert (error.restarts, error.period) == (4, 5.0)


async def test_failures_spread_out_in_time_never_escalate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs = 0

    async def fails_every_three_seconds() -> None:
        nonlocal runs
        runs += 1
        await trio.sleep(3)
        raise Boom("tired")

    async with open_supervisor(
        fake(), restart_intensity=RestartIntensity(max_restarts=3, period_s=5.0)
    ) as sup:
        await sup.start_child(fails_every_three_seconds, name="slow", backoff=QUICK)
        await trio.sleep(120)
        restarts = sup.statistics().restarts
    assert runs >= 30
    assert restarts == runs - 1


@pytest.mark.parametrize(
    ("restart", "exits_normally", "expected_runs"),
    [
        (RestartType.PERMANENT, True, 5),
        (RestartType.PERMANENT, False, 5),
        (RestartType.TRANSIENT, True, 1),
        (RestartType.TRANSIENT, False, 5),
        (RestartType.TEMPORARY, True, 1),
        (RestartType.TEMPORARY, False, 1),
    ],
)
async def test_restart_types_follow_otp(
    autojump_clock: trio.testing.MockClock,
    restart: RestartType,
    exits_normally: bool,
    expected_runs: int,
) -> None:
    runs = 0

    async def child() -> None:
        nonlocal runs
        runs += 1
        await trio.sleep(10)  # long enough apart that intensity never trips
        if not exits_normally:
            raise Boom("abnormal")

    async with open_supervisor(fake()) as sup:
        await sup.start_child(child, name="c", restart=restart, backoff=QUICK)
        await trio.sleep(45)  # time for 5 runs of 10 s (plus backoff) if restarted
    assert runs == expected_runs


async def test_restart_backoff_grows_between_consecutive_crashes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    started: list[float] = []

    async def crashes() -> None:
        started.append(trio.current_time())
        raise Boom("again")

    backoff = RestartBackoff(min_backoff_s=1.0, max_backoff_s=8.0, random_factor=0.0)
    with pytest.raises(RestartIntensityExceeded):
        async with open_supervisor(
            fake(), restart_intensity=RestartIntensity(max_restarts=4, period_s=100.0)
        ) as sup:
            await sup.start_child(crashes, name="c", backoff=backoff)
            await trio.sleep_forever()
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(started)]
    assert gaps == [1.0, 2.0, 4.0, 8.0]


async def test_escalation_with_real_crashing_cli_stops_every_process() -> None:
    token = marker()
    crashes = 0

    async def run_crashing_cli() -> None:
        nonlocal crashes
        crashes += 1
        await sup.ask(f"{token} crash")  # the fake exits with code 3

    plan = {
        "rules": [{"match": "crash", "exit_code": 3}, {"match": "slow", "latency_s": 60}],
        "latency_s": 0.05,
    }
    slow_call_started = trio.Event()
    with pytest.raises(RestartIntensityExceeded) as info:
        async with open_supervisor(
            fake(plan),
            retry=RetryConfig(max_attempts=1),
            restart_intensity=RestartIntensity(max_restarts=2, period_s=30.0),
        ) as sup:
            await sup.start_child(run_crashing_cli, name="cli-loop", backoff=QUICK)
            # An unrelated call that is in flight when the supervisor gives up.
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sup.ask, f"{token} slow")
                while sup.statistics().in_flight < 2:  # noqa: ASYNC110 - test polling
                    await trio.sleep(0.01)
                slow_call_started.set()
                await trio.sleep_forever()
    assert slow_call_started.is_set()
    assert crashes == 3
    assert "exited with code 3" in info.value.message
    assert live_processes_with(token) == []


async def test_calls_after_close_are_refused_clearly() -> None:
    async with open_supervisor(fake()) as sup:
        pass
    with pytest.raises(LLMError, match="closed"):
        await sup.ask("too late")
