"""The `llmsup` program: a client of the library (ask, chat, map, serve, emulate, demo).

Nothing in `supervisor` or `actors` imports this package.
"""

from ._main import main as main
