"""What a conversation does when a turn in a session fails: fail, or start a new session.

A warm process that dies mid-turn fails the turn as RETRYABLE; the engine's retry verdict
retries it once the child is restarted, resuming the same session. What reaches this
decision is the turn's final error. If the CLI says it no longer knows the session (it
died before storing it, or the id came from elsewhere), the conversation starts a new
session and replays the history it kept, once per turn; any other error is the turn's
answer.
"""

from __future__ import annotations

import enum
import re

from actors import LLMError


class TurnRecovery(enum.Enum):
    """The conversation's next step after a turn's call failed."""

    FAIL = "fail"  # the error is the turn's outcome
    NEW_SESSION = "new_session"  # forget the session id, replay the history into a new one


_SESSION_LOST = re.compile(
    r"no conversation found|(?:session|thread|conversation)\b[^\n]{0,80}\bnot found"
    r"|unknown session|no such (?:session|thread)|invalid session",
    re.IGNORECASE,
)


def session_lost(error: LLMError) -> bool:
    """True when a CLI says it does not know the session it was asked to continue.

    The CLI's classifier says so in ``error.lost_session`` (claude, codex and gemini each
    word it their own way: "no rollout found for thread id", "No previous sessions
    found"); the wording regex is the fallback for CLIs whose classifier does not.
    """
    if error.lost_session is not None:
        return True
    return bool(_SESSION_LOST.search(error.message) or _SESSION_LOST.search(error.stderr))


def recover_turn(error: LLMError, *, session_id: str | None, restarted: bool) -> TurnRecovery:
    """Decide after a session turn failed with ``error``.

    ``session_id``: the session the turn continued (None: the turn started one, so there
    is nothing to have lost). ``restarted``: the turn already went to a fresh session,
    whose failure is final.
    """
    if restarted or not session_id or not session_lost(error):
        return TurnRecovery.FAIL
    return TurnRecovery.NEW_SESSION
