"""Suite-wide settings: Hypothesis profiles, and skips that count as failures in CI.

- ``HYPOTHESIS_PROFILE=ci`` (set by ``.ci/run``): no deadlines, since CI shares two cores and
  a per-example deadline measures the machine's load, not the code; derandomized, so a red
  run is reproducible with the same command. ``dev`` (the default) keeps random exploration
  and also has no deadline, for the same reason.
- ``LLMSUP_REQUIRE_REAL_CLIS=1`` (set by ``.ci/run``): a skipped test fails instead, naming the
  reason, so CI can never go green without the real-CLI coverage. Without it (a user without
  npm), real-CLI tests skip with a one-line reason that says how to enable them.
- SIGINT: a runner that starts the suite as a non-interactive shell's background job hands
  it SIGINT ignored, and every Python child would then inherit that and ignore Ctrl+C. The
  suite restores the default, so the Ctrl+C tests test Ctrl+C, not the runner.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Generator

import pytest
from hypothesis import HealthCheck, settings

REQUIRE_ALL_ENV = "LLMSUP_REQUIRE_REAL_CLIS"

settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _skips_fail() -> bool:
    return os.environ.get(REQUIRE_ALL_ENV, "") not in ("", "0")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and _skips_fail() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, but {REQUIRE_ALL_ENV}=1 requires every test to run: {reason}"
