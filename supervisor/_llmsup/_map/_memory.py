"""Memory: --memory-budget sizes, MemAvailable, VmHWM peaks of process trees, estimates."""

from __future__ import annotations

import os
import re

from actors.lowlevel import mem_available as mem_available

from .._options import BadUsage

MIB = 1024 * 1024
DEFAULT_ESTIMATES_MIB: dict[str, int] = {"claude": 320, "gemini": 260, "codex": 150}
"""Starting per-process memory estimates; any other CLI (fake, --command) starts at 30 MiB."""
OTHER_ESTIMATE_MIB = 30
BUDGET_SHARE = 0.5
"""The default memory budget, as a share of MemAvailable."""
SAMPLE_EVERY_S = 0.2
TRUSTED_AFTER = 3
"""Processes of a CLI to observe before its observed peak replaces the default estimate."""
OBSERVED_MARGIN = 1.2

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``2G``, ``500M``, ``1.5GiB``, ``64k`` or plain bytes; binary multiples."""
    match = _SIZE.match(text)
    if not match:
        raise BadUsage(f"--memory-budget {text!r}: expected a size such as 2G or 500M")
    power = " kmgt".index(match.group(2).lower() or " ")
    size = int(float(match.group(1)) * 1024**power)
    if size < 1:
        raise BadUsage(f"--memory-budget {text!r}: must be more than 0")
    return size


def tree_peak_bytes(pid: int) -> int | None:
    """Peak resident size (VmHWM) of a live process plus its descendants; None if gone."""
    kib = _tree_peak_kib(pid)
    return None if kib is None else kib * 1024


def _tree_peak_kib(pid: int) -> int | None:
    own = _status_kib(pid, "VmHWM:")
    if own is None:
        return None
    return own + sum(_tree_peak_kib(child) or 0 for child in _children(pid))


def _status_kib(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None  # a zombie: no memory any more


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
    except (OSError, ValueError):
        pass
    return found


def mib(size: float) -> str:
    if size >= 1024 * MIB:
        return f"{size / (1024 * MIB):.1f} GiB"
    return f"{size / MIB:.0f} MiB" if size >= 10 * MIB else f"{size / MIB:.1f} MiB"
