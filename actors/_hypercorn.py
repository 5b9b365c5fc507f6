"""Hypercorn serving sockets bound beforehand (shared by the emulator and ``llmsup serve``).

Binding before Hypercorn starts makes "address in use" a plain `OSError` raised before
anything runs, rather than one wrapped in the exception groups of Hypercorn's nurseries,
and lets port 0 be reported as the real port.
"""

from __future__ import annotations

from hypercorn.config import Config, Sockets


class PreboundConfig(Config):
    """Hypercorn's config, serving the given already-bound sockets."""

    def __init__(self, sockets: Sockets) -> None:
        super().__init__()
        self._prebound = sockets

    def create_sockets(self) -> Sockets:
        return self._prebound


def bind_sockets(host: str, port: int) -> Sockets:
    """A listening-ready TCP socket on ``host:port`` (Hypercorn's own socket options)."""
    binder = Config()
    binder.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    return binder.create_sockets()
