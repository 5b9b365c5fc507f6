"""One run's settings, checked from the arguments before anything runs or is written."""

from __future__ import annotations

import argparse
import os

import attrs
from pydantic import BaseModel

from actors import CliSpec

from .._options import (
    BadUsage,
    Policies,
    fallback_specs,
    policies_from_args,
    spec_from_args,
)
from ._input import STDIN, PromptSource, source_from_args
from ._memory import BUDGET_SHARE, mem_available, parse_size
from ._output import PreviousRun, scan_output
from ._schema import load_output_model

STDOUT = STDIN
"""``-o -``: the output lines go to standard output."""


@attrs.define
class MapJob:
    source: PromptSource
    skip: set[str]  # id keys (see `id_key`) the run leaves out
    total: int
    previous: PreviousRun
    output: str  # "-" for standard output
    output_model: type[BaseModel] | None
    specs: list[CliSpec]
    policies: Policies
    budget: int | None
    budget_note: str
    system: str | None = None
    retry_failed: bool = False
    standby: int = 0

    @property
    def to_stdout(self) -> bool:
        return self.output == STDOUT

    def describe_output(self) -> str:
        return "stdout" if self.to_stdout else self.output


def prepare_job(args: argparse.Namespace) -> MapJob:
    """Everything that can be a usage error, before anything runs or is written."""
    specs = [spec_from_args(args), *fallback_specs(args)]
    policies = policies_from_args(args)
    output_model = load_output_model(args.output_schema) if args.output_schema else None
    retry_failed = bool(getattr(args, "retry_failed", False))
    standby = getattr(args, "standby", 0) or 0
    if standby < 0:
        raise BadUsage(f"--standby must be >= 0, got {standby}")
    output = args.output
    if output == STDOUT and (args.resume or retry_failed):
        flag = "--retry-failed" if retry_failed else "--resume"
        raise BadUsage(f"{flag} needs an output file; -o - (stdout) has nothing to resume from")
    if output != STDOUT:
        parent = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(parent):
            raise BadUsage(f"-o {output}: no directory {parent}")
    _check_standby(standby, specs)
    budget, note = _budget(args)
    source = source_from_args(args)
    try:
        input_ids = source.check()
        previous = _previous_run(output, input_ids, resume=args.resume, retry=retry_failed)
    except BaseException:
        source.close()
        raise
    total = len(input_ids) - len(previous.done)
    return MapJob(
        source=source,
        skip=previous.done,
        total=total,
        previous=previous,
        output=output,
        output_model=output_model,
        specs=specs,
        policies=policies,
        budget=budget,
        budget_note=note,
        system=args.system,
        retry_failed=retry_failed,
        standby=standby,
    )


def _check_standby(standby: int, specs: list[CliSpec]) -> None:
    """--standby N with no CLI of the chain able to start a process before its prompt is a
    usage error (a CLI of the chain that cannot runs without standby processes)."""
    if standby <= 0:
        return
    reasons = [spec.standby_refusal_reason() for spec in specs]
    if all(reason is not None for reason in reasons):
        hint = " (--prompt-via stdin lets --command and the fake CLI use it)"
        raise BadUsage(f"--standby: not for {specs[0].name}: {reasons[0]}{hint}")


def _budget(args: argparse.Namespace) -> tuple[int | None, str]:
    if args.memory_budget is not None:
        return parse_size(args.memory_budget), "--memory-budget"
    available = mem_available()
    budget = int(available * BUDGET_SHARE) if available else None
    return budget, (f"{BUDGET_SHARE:.0%} of MemAvailable" if budget else "unknown MemAvailable")


def _previous_run(output: str, input_ids: set[str], *, resume: bool, retry: bool) -> PreviousRun:
    """What is in OUTPUT already: refused without --resume/--retry-failed."""
    if output == STDOUT or not (os.path.exists(output) and os.path.getsize(output) > 0):
        return PreviousRun()
    if not (resume or retry):
        raise BadUsage(
            f"{output} exists; use --resume to complete it, --retry-failed to run its "
            "failed items again, or remove it"
        )
    try:
        return scan_output(output, input_ids, retry_failed=retry)
    except OSError as exc:
        raise BadUsage(f"cannot read {output}: {exc.strerror or exc}") from exc
