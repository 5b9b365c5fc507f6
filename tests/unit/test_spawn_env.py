"""The environment a CLI gets: `spawn_env` (bytes, built for speed) is `build_env` exactly."""

from __future__ import annotations

import os

import attrs
import pytest

import actors
from actors._subreaper import SUPERVISOR_MARK


def _decoded(env: dict[bytes, bytes]) -> dict[str, str]:
    return {os.fsdecode(name): os.fsdecode(value) for name, value in env.items()}


@pytest.mark.parametrize("inherit", [True, False])
@pytest.mark.parametrize("extra", [{}, {"HOME": "/tmp/scratch", "LLMSUP_TEST_ÜNÏ": "välue ✓"}])
def test_spawn_env_is_build_env_in_bytes(
    inherit: bool, extra: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMSUP_TEST_INHERITED", "from the parent")
    spec = attrs.evolve(actors.command(["true"], env=extra), inherit_env=inherit)
    built = spec.build_env()
    assert _decoded(spec.spawn_env()) == built
    assert built[SUPERVISOR_MARK] == str(os.getpid())
    assert ("LLMSUP_TEST_INHERITED" in built) is inherit
    assert all(built[name] == value for name, value in extra.items())


def test_a_change_to_the_environment_reaches_the_next_spawn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = actors.command(["true"])
    monkeypatch.setenv("LLMSUP_TEST_LATE", "1")
    assert _decoded(spec.spawn_env())["LLMSUP_TEST_LATE"] == "1"
