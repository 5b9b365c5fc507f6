"""Supervised LLM CLI calls on trio: the public API.

``async with open_supervisor(actors.fake()) as sup: result = await sup.ask("hi")``.
`supervisor` decides *whether and when* to run (retry, backoff, breaker, limits, restarts);
`actors` knows *how* to run one CLI and what its output means.
"""

from actors._errors import ErrorCategory as ErrorCategory
from actors._errors import LLMError as LLMError
from actors._errors import RestartIntensityExceeded as RestartIntensityExceeded
from actors._events import Usage as Usage
from actors._timeouts import ProgressiveTimeoutManager as ProgressiveTimeoutManager
from actors._timeouts import TimeoutConfig as TimeoutConfig

from ._backoff import RetryConfig as RetryConfig
from ._backoff import backoff_delay as backoff_delay
from ._backoff import retry_delay as retry_delay
from ._backoff import should_retry as should_retry
from ._breaker import BreakerStatistics as BreakerStatistics
from ._breaker import CircuitBreaker as CircuitBreaker
from ._breaker import CircuitState as CircuitState
from ._breaker import Permit as Permit
from ._budget import RetryBudget as RetryBudget
from ._budget import RetryBudgetTracker as RetryBudgetTracker
from ._chat import Conversation as Conversation
from ._conversation import ConversationHistory as ConversationHistory
from ._conversation import ConversationManager as ConversationManager
from ._conversation import Message as Message
from ._fanout import Completed as Completed
from ._fanout import MapStream as MapStream
from ._intensity import RestartBackoff as RestartBackoff
from ._intensity import RestartIntensity as RestartIntensity
from ._intensity import RestartTracker as RestartTracker
from ._intensity import RestartType as RestartType
from ._json import JSONExtractor as JSONExtractor
from ._json import schema_instructions as schema_instructions
from ._result import Result as Result
from ._retry import RetryHandler as RetryHandler
from ._stats import SupervisorStatistics as SupervisorStatistics
from ._stream import ResponseStream as ResponseStream
from ._supervisor import Supervisor as Supervisor
from ._supervisor import open_supervisor as open_supervisor
from ._wrapper import LLMCliWrapper as LLMCliWrapper
