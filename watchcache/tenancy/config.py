"""What a tenant is configured with: plain value types, read by the YAML loader and by tenancy."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..api.spec import DEFAULT_MAX_OBJECT_BYTES

__all__ = ["TenantConfig", "TenantLimits"]


@dataclass(frozen=True, kw_only=True)
class TenantLimits:
    """What one tenant may use. Configured per tenant under ``limits:`` (camelCase keys)."""

    requests_per_second: float = 100.0
    """Sustained request rate; over it requests get 429 with Retry-After."""
    burst: int = 200
    """Requests allowed at once above the sustained rate."""
    max_in_flight: int = 32
    """Requests (other than watches) executing at once."""
    max_queued: int = 64
    """Requests waiting for an in-flight slot; over it, 429."""
    max_watches: int = 1000
    """Open watches at once."""
    max_objects: int = 100_000
    """Objects stored across the tenant's writable groups; a create over it is 403."""
    max_bytes: int = 1 << 30
    """Bytes of stored values across the tenant's writable groups; a write over it is 403."""
    max_request_bytes: int = 3 * 1024 * 1024
    """Largest request body (413 over it); the server-wide limit applies too."""
    max_json_depth: int = 64
    """Deepest nesting of objects and arrays in a request body or a patched object (400/422 over it)."""
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES
    """Largest object a write may store, checked before anything is written (413 over it); a patch
    that would grow an object past it fails as it applies."""
    max_bytes_in_flight: int = 64 * 1024 * 1024
    """Bytes of responses the tenant's requests may hold at once while clients read them; over it
    the tenant's own requests wait (up to the write timeout), never another tenant's."""
    max_connections: int = 2048
    """Open connections attributed to the tenant (by their requests' credentials); a request on one
    more is answered 429 and its connection closed."""


@dataclass(frozen=True, slots=True)
class TenantConfig:
    """One aggregated API server: full access to ``groups``, read-only to ``read_groups``."""

    name: str
    """Tenant name: the user name of its tokens, the CN of its client certificates."""
    groups: tuple[str, ...] = ()
    """API groups with full access (list, get, watch, create, update, patch, delete)."""
    read_groups: tuple[str, ...] = ()
    """API groups with read-only access (list, get, watch)."""
    tokens: tuple[str, ...] = ()
    """Bearer tokens that authenticate as this tenant."""
    limits: TenantLimits = field(default_factory=TenantLimits)
    """Rate, concurrency, watch, quota and body limits (``limits:`` in the YAML)."""
