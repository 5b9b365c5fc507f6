"""The stop-signal decisions of the ``llmsup`` command (no processes)."""

from __future__ import annotations

import signal

from supervisor._llmsup._map._command import INTERRUPT_STATUS
from supervisor._llmsup._signals import STOP_SIGNALS, StopRequest, signal_status


def test_the_first_stop_signal_wins() -> None:
    request = StopRequest()
    assert request.take(signal.SIGHUP)
    assert not request.take(signal.SIGTERM)
    assert not request.take(signal.SIGINT)
    assert request.signum == signal.SIGHUP


def test_a_stopped_command_exits_with_128_plus_the_signal() -> None:
    assert signal_status(signal.SIGINT) == 130
    assert signal_status(signal.SIGTERM) == 143
    assert signal_status(signal.SIGHUP) == 129
    assert set(STOP_SIGNALS) == {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    assert INTERRUPT_STATUS == {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
