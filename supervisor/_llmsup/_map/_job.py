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
from ._input import PromptSource, source_from_args
from ._memory import BUDGET_SHARE, mem_available, parse_size
from ._output import PreviousRun, scan_output
from ._schema import load_output_model


@attrs.define
class MapJob:
    source: PromptSource
    skip: set[str | int]
    total: int
    previous: PreviousRun
    output: str
    output_model: type[BaseModel] | None
    specs: list[CliSpec]
    policies: Policies
    budget: int | None
    budget_note: str
    system: str | None = None


def prepare_job(args: argparse.Namespace) -> MapJob:
    """Everything that can be a usage error, before anything runs or is written."""
    specs = [spec_from_args(args), *fallback_specs(args)]
    policies = policies_from_args(args)
    output_model = load_output_model(args.output_schema) if args.output_schema else None
    if args.memory_budget is not None:
        budget: int | None = parse_size(args.memory_budget)
        note = "--memory-budget"
    else:
        available = mem_available()
        budget = int(available * BUDGET_SHARE) if available else None
        note = f"{BUDGET_SHARE:.0%} of MemAvailable" if budget else "unknown MemAvailable"
    source = source_from_args(args)
    input_ids = source.check()
    output = args.output
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise BadUsage(f"-o {output}: no directory {parent}")
    previous = PreviousRun()
    if os.path.exists(output) and os.path.getsize(output) > 0:
        if not args.resume:
            raise BadUsage(f"{output} exists; use --resume to complete it, or remove it")
        try:
            previous = scan_output(output, input_ids)
        except OSError as exc:
            raise BadUsage(f"cannot read {output}: {exc.strerror or exc}") from exc
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
    )
