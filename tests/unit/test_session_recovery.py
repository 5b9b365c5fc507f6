"""The conversation's recovery decision trusts the classifier's ``lost_session`` first."""

from __future__ import annotations

from actors import ErrorCategory, LLMError
from supervisor._policy._session import TurnRecovery, recover_turn, session_lost

# Each CLI's own words for an unknown session, as its classifier reports them; none of them
# matches the wording fallback.
CODEX = LLMError(
    "session t1 is not known to codex: thread/resume: thread/resume failed: no rollout "
    "found for thread id t1 (code -32600)",
    ErrorCategory.PERMANENT,
    lost_session="t1",
)
GEMINI = LLMError(
    "session s1 is not known to gemini: No previous sessions found for this project.",
    ErrorCategory.PERMANENT,
    lost_session="s1",
)


def test_the_classifiers_lost_session_is_enough() -> None:
    for error in (CODEX, GEMINI):
        assert session_lost(error)
        assert recover_turn(error, session_id="t1", restarted=False) is TurnRecovery.NEW_SESSION


def test_a_lost_session_is_still_replaced_only_once_per_turn() -> None:
    assert recover_turn(CODEX, session_id="t1", restarted=True) is TurnRecovery.FAIL
    assert recover_turn(CODEX, session_id=None, restarted=False) is TurnRecovery.FAIL


def test_the_wording_stays_the_fallback_for_other_clis() -> None:
    other = LLMError("mycli: unknown session abc", ErrorCategory.PERMANENT)
    assert other.lost_session is None
    assert session_lost(other)
    assert not session_lost(LLMError("quota exceeded", ErrorCategory.PERMANENT))
