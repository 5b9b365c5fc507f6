"""Supervised LLM CLI calls on trio: the public API.

``async with open_supervisor(actors.fake()) as sup: result = await sup.ask("hi")``.
`supervisor` decides *whether and when* to run (retry, backoff, breaker, limits, restarts);
`actors` knows *how* to run one CLI and what its output means.
"""

from actors import ErrorCategory as ErrorCategory
from actors import LLMError as LLMError
from actors import ProgressiveTimeoutManager as ProgressiveTimeoutManager
from actors import RestartIntensityExceeded as RestartIntensityExceeded
from actors import TimeoutConfig as TimeoutConfig
from actors import Usage as Usage

from ._compat import LLMCliWrapper as LLMCliWrapper
from ._conversation import Conversation as Conversation
from ._fanout import Completed as Completed
from ._fanout import MapStream as MapStream
from ._history import ConversationHistory as ConversationHistory
from ._history import ConversationManager as ConversationManager
from ._history import Message as Message
from ._json import JSONExtractor as JSONExtractor
from ._json import schema_instructions as schema_instructions
from ._policy._backoff import RetryConfig as RetryConfig
from ._policy._backoff import backoff_delay as backoff_delay
from ._policy._backoff import retry_delay as retry_delay
from ._policy._backoff import should_retry as should_retry
from ._policy._breaker import BreakerStatistics as BreakerStatistics
from ._policy._breaker import CircuitBreaker as CircuitBreaker
from ._policy._breaker import CircuitState as CircuitState
from ._policy._breaker import Permit as Permit
from ._policy._budget import RetryBudget as RetryBudget
from ._policy._budget import RetryBudgetTracker as RetryBudgetTracker
from ._policy._intensity import RestartBackoff as RestartBackoff
from ._policy._intensity import RestartIntensity as RestartIntensity
from ._policy._intensity import RestartTracker as RestartTracker
from ._policy._intensity import RestartType as RestartType
from ._result import Result as Result
from ._retry import RetryHandler as RetryHandler
from ._stats import SupervisorStatistics as SupervisorStatistics
from ._stream import ResponseStream as ResponseStream
from ._supervisor import Supervisor as Supervisor
from ._supervisor import open_supervisor as open_supervisor
