"""The REST front's settings: plain values, set by the command line."""

from __future__ import annotations

from dataclasses import dataclass, field

from .connections import ConnectionSettings
from .http2 import HTTP2Settings

__all__ = ["ServerSettings"]


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """HTTP-level limits and timeouts."""

    max_body_bytes: int = 3 * 1024 * 1024
    """Largest request body accepted; larger ones get 413 RequestEntityTooLarge."""
    min_request_timeout: float = 1800.0
    """A watch without timeoutSeconds ends after a random time in [this, twice this] (kube-apiserver's
    ``--min-request-timeout``), which spreads re-watches out."""
    write_timeout: float = 60.0
    """Seconds any response (a watch, a LIST, an object) may stay blocked on a client that does not
    read before the connection is dropped."""
    connections: ConnectionSettings = field(default_factory=ConnectionSettings)
    """Header and idle timeouts, and the caps on connections without credentials."""
    http2: HTTP2Settings = field(default_factory=HTTP2Settings)
    """HTTP/2 (ALPN ``h2`` over TLS, prior knowledge in plain text) and its bounds."""
