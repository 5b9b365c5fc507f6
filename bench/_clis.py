"""Where the benches find the real CLIs, and each CLI's spec factory (one place, six benches)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import actors

ROOT = Path(__file__).resolve().parent.parent
CLI_DIR = Path(os.environ.get("LLMSUP_CLI_DIR") or ROOT / ".clis" / "node_modules" / ".bin")
CliName = Literal["claude", "codex", "gemini"]
FACTORIES: dict[CliName, Callable[..., actors.CliSpec]] = {
    "claude": actors.claude,
    "codex": actors.codex,
    "gemini": actors.gemini,
}
