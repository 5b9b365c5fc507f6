"""Prometheus metrics: the per-app registry, call outcomes and durations, supervisor stats."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import attrs
import trio
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from actors import ErrorCategory, LLMError
from supervisor import CircuitState, Supervisor

from ._state import ServeState

_BREAKER_GAUGE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}

OUTCOMES = ("ok", *(c.value for c in ErrorCategory), "cancelled", "internal")
"""Values of the ``outcome`` label of ``llmsup_calls_total``."""

_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@attrs.define
class TrackedCall:
    """One call's ``outcome`` and ``cli`` labels (set by the handler, else inferred)."""

    outcome: str | None = None
    cli: str | None = None


class _SupervisorCollector:
    """Exposes the supervisor's own counters at scrape time."""

    def __init__(self, state: ServeState) -> None:
        self._state = state

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self._state.supervisor)

    @staticmethod
    def _families(sup: Supervisor | None) -> list[Metric]:
        stats = sup.statistics() if sup is not None else None
        state = stats.breaker_state if stats is not None else None
        counters = [
            ("llmsup_retries", "Attempts retried after a failure.", "retries"),
            ("llmsup_retries_refused", "Retries the retry budget refused.", "retries_refused"),
            ("llmsup_restarts", "Restarts of long-lived children (warm CLI actors).", "restarts"),
            ("llmsup_processes_spawned", "CLI processes started.", "processes_spawned"),
            (
                "llmsup_breaker_rejections",
                "Attempts refused by the open circuit breaker.",
                "breaker_rejections",
            ),
        ]
        fallbacks = CounterMetricFamily(
            "llmsup_fallbacks",
            "Calls moved from a CLI to the next of the fallback chain, by the CLI they left.",
            labels=["cli"],
        )
        for cli, count in sorted((stats.fallbacks if stats else {}).items()):
            fallbacks.add_metric([cli], count)
        standby = [
            ("llmsup_standby_taken", "Standby processes handed to a call.", "standby_taken"),
            (
                "llmsup_standby_discarded",
                "Standby processes thrown away: they exited or wrote before their prompt.",
                "standby_discarded",
            ),
            (
                "llmsup_standby_recycled",
                "Standby processes stopped and replaced for their age.",
                "standby_recycled",
            ),
        ]
        return [
            fallbacks,
            GaugeMetricFamily(
                "llmsup_standby_ready",
                "Standby processes started and waiting for their prompt (--standby).",
                value=stats.standby_ready if stats else 0,
            ),
            *(
                CounterMetricFamily(name, doc, value=getattr(stats, field) if stats else 0)
                for name, doc, field in standby
            ),
            GaugeMetricFamily(
                "llmsup_in_flight",
                "Calls in progress in the supervisor (queued for a slot included).",
                value=stats.in_flight if stats else 0,
            ),
            *(
                CounterMetricFamily(name, doc, value=getattr(stats, field) if stats else 0)
                for name, doc, field in counters
            ),
            GaugeMetricFamily(
                "llmsup_breaker_state",
                "Circuit breaker state: 0 closed (or no breaker), 1 half-open, 2 open.",
                value=_BREAKER_GAUGE[state] if state is not None else 0,
            ),
        ]


class ServeMetrics:
    def __init__(self, state: ServeState) -> None:
        self.registry = CollectorRegistry()
        self._default_cli = state.spec.name
        self.calls = Counter(
            "llmsup_calls",
            "Calls answered, by outcome (ok or the error category) and by the CLI that "
            "answered or failed last (a fallback's when the call moved).",
            ["outcome", "cli"],
            registry=self.registry,
        )
        for cli in dict.fromkeys(spec.name for spec in state.chain):
            for outcome in OUTCOMES:
                self.calls.labels(outcome=outcome, cli=cli)
        self.duration = Histogram(
            "llmsup_call_duration_seconds",
            "Wall time of calls, retries and backoff included, by the CLI that answered "
            "or failed last.",
            ["cli"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_SupervisorCollector(state))

    @contextlib.contextmanager
    def track(self) -> Iterator[TrackedCall]:
        """Count one call; its outcome is ``tracked.outcome``, else inferred from how it ends."""
        tracked = TrackedCall()
        started = trio.current_time()
        try:
            yield tracked
        except LLMError as error:
            tracked.outcome = tracked.outcome or error.category.value
            tracked.cli = tracked.cli or error.cli
            raise
        except trio.Cancelled:
            tracked.outcome = tracked.outcome or "cancelled"
            raise
        except BaseException:
            tracked.outcome = tracked.outcome or "internal"
            raise
        finally:
            cli = tracked.cli or self._default_cli
            self.calls.labels(outcome=tracked.outcome or "ok", cli=cli).inc()
            self.duration.labels(cli=cli).observe(trio.current_time() - started)

    def render(self) -> bytes:
        return generate_latest(self.registry)
