"""The actor runtime's interface for the engine that drives it (`supervisor`), as in trio.

Everything `supervisor` needs from `actors` beyond the public names of `actors` itself comes
from here, so the boundary between the two packages is this one file. Users rarely need it:
it is for building your own engine on the actors (run an actor, relay its messages, sweep
orphaned groups).
"""

from ._backend import SpawnedCli as SpawnedCli
from ._channels import receive_soon as receive_soon
from ._channels import send_soon as send_soon
from ._errors import RETRYABLE_CATEGORIES as RETRYABLE_CATEGORIES
from ._framing import LineFramer as LineFramer
from ._groups import unwrap_group as unwrap_group
from ._hygiene import mem_available as mem_available
from ._hypercorn import PreboundConfig as PreboundConfig
from ._hypercorn import bind_sockets as bind_sockets
from ._messages import ActorDone as ActorDone
from ._messages import ActorMessage as ActorMessage
from ._messages import CallOutcome as CallOutcome
from ._process import end_standby as end_standby
from ._process import run_process_actor as run_process_actor
from ._process import start_standby as start_standby
from ._process import watch_standby as watch_standby
from ._registry import sweep_orphaned_groups as sweep_orphaned_groups
from ._spec import OutputFormat as OutputFormat
from ._timeouts import default_clock as default_clock
from ._validators import at_least as at_least
from ._validators import category_set as category_set
from ._validators import errors_in_one_line as errors_in_one_line
from ._validators import finite as finite
from ._validators import positive_finite as positive_finite
from ._warm import Turn as Turn
from ._warm import run_warm_process as run_warm_process
