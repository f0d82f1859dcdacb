"""What a served resource is: a plain value type, shared by the configuration and every layer."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_OBJECT_BYTES", "ResourceSpec"]

DEFAULT_MAX_OBJECT_BYTES = 1_572_864
"""Largest object written (etcd's default request limit, 1.5 MiB), unless a writer's quota says otherwise."""


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """A served resource: all ``versions`` share one storage (no conversion)."""

    group: str
    """API group, e.g. ``wardle.example.com``."""
    resource: str
    """Plural, lower-case resource name, e.g. ``flunders``."""
    kind: str
    """Kind of one object, e.g. ``Flunder``; lists are ``{kind}List``."""
    namespaced: bool = True
    """Whether objects live in namespaces."""
    versions: tuple[str, ...] = ("v1",)
    """Served versions; the first is the default of the Python API."""

    @property
    def qualified(self) -> str:
        """``resource.group``, as Kubernetes names a resource in messages."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version
