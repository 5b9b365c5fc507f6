"""A script whose #! interpreter is missing is reported as such, not as a missing binary."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import actors
from actors import ErrorCategory, LLMError
from supervisor import open_supervisor


async def test_missing_shebang_interpreter_is_named(tmp_path: Path) -> None:
    script = tmp_path / "my-cli"
    script.write_text("#!/nope/python -u\nprint('never')\n")
    os.chmod(script, 0o755)
    async with open_supervisor(actors.command([str(script)])) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask("hello")
    error = info.value
    assert error.category is ErrorCategory.PERMANENT
    assert "'/nope/python'" in error.message
    assert "#!" in error.message and "interpreter" in error.message
    assert "not found" in error.message
    assert "CLI binary not found" not in error.message


async def test_a_truly_missing_binary_is_still_reported_as_missing(tmp_path: Path) -> None:
    async with open_supervisor(actors.command([str(tmp_path / "absent")])) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask("hello")
    assert "CLI binary not found" in info.value.message
