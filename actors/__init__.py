"""How to run one LLM CLI and what its output means.

One actor is one CLI process: spawned in its own session, drained, framed, parsed with the
CLI's adapter, stopped. Specs (`command`, `fake`, ...) say how to run a given CLI.
"""

from typing import TYPE_CHECKING

from ._clis._adapters import JsonLinesAdapter as JsonLinesAdapter
from ._clis._adapters import TextAdapter as TextAdapter
from ._clis._classify import PatternClassifier as PatternClassifier
from ._clis._classify import parse_retry_after as parse_retry_after
from ._clis._claude import ClaudeAdapter as ClaudeAdapter
from ._clis._claude import ClaudeClassifier as ClaudeClassifier
from ._clis._claude import claude as claude
from ._clis._codex import CodexAdapter as CodexAdapter
from ._clis._codex import CodexClassifier as CodexClassifier
from ._clis._codex import codex as codex
from ._clis._command import command as command
from ._clis._discovery import cli_search_description as cli_search_description
from ._clis._discovery import find_executable as find_executable
from ._clis._gemini import GeminiAdapter as GeminiAdapter
from ._clis._gemini import GeminiClassifier as GeminiClassifier
from ._clis._gemini import gemini as gemini
from ._clis._gemini import gemini_stderr_watch as gemini_stderr_watch
from ._clis._generic import FieldMapAdapter as FieldMapAdapter
from ._clis._generic import generic as generic
from ._errors import ErrorCategory as ErrorCategory
from ._errors import LLMError as LLMError
from ._errors import RestartIntensityExceeded as RestartIntensityExceeded
from ._events import AssistantMessage as AssistantMessage
from ._events import ErrorReport as ErrorReport
from ._events import Event as Event
from ._events import FinalResult as FinalResult
from ._events import RawEvent as RawEvent
from ._events import SessionStarted as SessionStarted
from ._events import TextDelta as TextDelta
from ._events import ToolResult as ToolResult
from ._events import ToolUse as ToolUse
from ._events import Usage as Usage
from ._events import UsageReport as UsageReport
from ._fakes._plan import FaultPlan as FaultPlan
from ._fakes._plan import FaultRule as FaultRule
from ._fakes._simulated import simulated as simulated
from ._fakes._spec import fake as fake
from ._messages import ActorDone as ActorDone
from ._messages import CallOutcome as CallOutcome
from ._process import run_process_actor as run_process_actor
from ._spawn import stop_process_tree as stop_process_tree
from ._spec import Adapter as Adapter
from ._spec import Classifier as Classifier
from ._spec import CliSpec as CliSpec
from ._spec import ProcessExit as ProcessExit
from ._spec import ToolPolicy as ToolPolicy
from ._timeouts import ProgressiveTimeoutManager as ProgressiveTimeoutManager
from ._timeouts import TimeoutConfig as TimeoutConfig

# The provider emulator pulls in an HTTP server stack: import it only when it is used.
if TYPE_CHECKING:
    from ._fakes._emulator import Emulator as Emulator
    from ._fakes._emulator import EmulatorRule as EmulatorRule
    from ._fakes._emulator import Fault as Fault
    from ._fakes._emulator import RecordedRequest as RecordedRequest
    from ._fakes._emulator import RulesFileError as RulesFileError
    from ._fakes._emulator import cli_environment as cli_environment
    from ._fakes._emulator import load_rules as load_rules
    from ._fakes._emulator import open_emulator as open_emulator
    from ._fakes._emulator import run_emulator_forever as run_emulator_forever

_EMULATOR_NAMES = frozenset(
    {
        "Emulator",
        "EmulatorRule",
        "Fault",
        "RecordedRequest",
        "RulesFileError",
        "cli_environment",
        "load_rules",
        "open_emulator",
        "run_emulator_forever",
    }
)


def __getattr__(name: str) -> object:
    if name in _EMULATOR_NAMES:
        from ._fakes import _emulator

        return getattr(_emulator, name)
    raise AttributeError(f"module 'actors' has no attribute {name!r}")
