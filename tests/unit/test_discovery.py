"""`find_executable`: where each factory finds its CLI when no path is given."""

from __future__ import annotations

from pathlib import Path

import pytest

import actors
from actors import find_executable
from actors._clis._discovery import CLI_DIR_ENV, cli_search_description


def _make_exe(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_find_executable_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "llmsup-test-cli-xyz"
    on_path = _make_exe(tmp_path / "path-bin", name)
    in_env_dir = _make_exe(tmp_path / "env-dir", name)
    project = tmp_path / "project"
    in_project = _make_exe(project / ".clis" / "node_modules" / ".bin", name)
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    monkeypatch.setenv("PATH", str(on_path.parent))
    monkeypatch.setenv(CLI_DIR_ENV, str(in_env_dir.parent))

    assert find_executable(name, "/explicit/missing/claude") == "/explicit/missing/claude"
    assert find_executable(name) == str(on_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_executable(name) == str(in_env_dir)
    in_env_dir.chmod(0o644)  # not executable: skipped
    assert find_executable(name) == str(in_project)  # found searching upward
    monkeypatch.delenv(CLI_DIR_ENV)
    assert find_executable(name) == str(in_project)
    monkeypatch.chdir(tmp_path)
    assert find_executable(name) == name  # nothing anywhere: the bare name
    description = cli_search_description(name)
    assert name in description and CLI_DIR_ENV in description
    assert ".ci/install-clis.sh" in description


def test_factories_use_find_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv(CLI_DIR_ENV, str(tmp_path))
    exe = _make_exe(tmp_path, "gemini")
    assert actors.gemini().argv[0] == str(exe)
    assert actors.gemini(executable="/my/gemini").argv[0] == "/my/gemini"
