"""The service's YAML configuration: which resources are served, and which tenants may use them.

Loading never raises anything but :class:`ConfigError`, whose message is one line naming the problem,
so ``watchcache serve`` can exit non-zero with a one-line reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .api.spec import PrinterColumn, ResourceSpec
from .errors import ConfigError
from .tenancy.config import TenantConfig, TenantLimits

__all__ = ["Config", "ConfigError", "load_config", "parse_config"]

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_VERSION = re.compile(r"v[0-9]+((alpha|beta)[0-9]+)?")
_KIND = re.compile(r"[A-Z][A-Za-z0-9]*")


@dataclass(frozen=True, slots=True)
class Config:
    resources: tuple[ResourceSpec, ...]
    """Every served resource; each gets one etcd watch and one cache."""
    tenants: tuple[TenantConfig, ...] | None
    """None when the section is absent: authentication is off (loopback development)."""


def load_config(path: str | Path) -> Config:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror or err}") from None
    return parse_config(text, source=str(path))


def parse_config(text: str, *, source: str = "config") -> Config:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: want a mapping with 'resources' (and optionally 'tenants')")
    unknown = set(data) - {"resources", "tenants"}
    if unknown:
        raise ConfigError(f"{source}: unknown section(s): {', '.join(sorted(map(str, unknown)))}")
    resources = tuple(
        _resource(item, f"{source}: resources[{i}]")
        for i, item in enumerate(_list(data, "resources", source))
    )
    if not resources:
        raise ConfigError(f"{source}: 'resources' must list at least one resource")
    seen: set[tuple[str, str]] = set()
    for spec in resources:
        if (spec.group, spec.resource) in seen:
            raise ConfigError(f"{source}: resource {spec.qualified} is listed twice")
        seen.add((spec.group, spec.resource))
    tenants = None
    if "tenants" in data:
        tenants = tuple(
            _tenant(item, f"{source}: tenants[{i}]") for i, item in enumerate(_list(data, "tenants", source))
        )
        names = [t.name for t in tenants]
        if len(set(names)) != len(names):
            raise ConfigError(f"{source}: tenant names must be unique")
        tokens = [tok for t in tenants for tok in t.tokens]
        if len(set(tokens)) != len(tokens):
            raise ConfigError(f"{source}: a token is given to more than one tenant")
    return Config(resources=resources, tenants=tenants)


def _list(data: dict[str, Any], key: str, source: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{source}: '{key}' must be a list")
    return value


def _str(item: dict[str, Any], key: str, where: str, pattern: re.Pattern[str], what: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ConfigError(f"{where}: '{key}' must be {what}, got {value!r}")
    return value


def _strings(item: dict[str, Any], key: str, where: str, pattern: re.Pattern[str] | None) -> tuple[str, ...]:
    value = item.get(key, [])
    if value is None:
        value = []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: '{key}' must be a list of strings")
    if pattern is not None:
        for v in value:
            if not pattern.fullmatch(v):
                raise ConfigError(f"{where}: '{key}' has an invalid entry {v!r}")
    return tuple(value)


def _resource(item: object, where: str) -> ResourceSpec:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: want a mapping")
    unknown = set(item) - {"group", "versions", "resource", "kind", "namespaced", "printerColumns"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    group = _str(item, "group", where, _DNS_SUBDOMAIN, "a DNS subdomain (e.g. wardle.example.com)")
    resource = _str(item, "resource", where, _DNS_LABEL, "a lower-case plural (e.g. flunders)")
    kind = _str(item, "kind", where, _KIND, "a CamelCase kind (e.g. Flunder)")
    versions = _strings(item, "versions", where, _VERSION)
    if not versions:
        raise ConfigError(f"{where}: 'versions' must list at least one version (e.g. [v1alpha1])")
    namespaced = item.get("namespaced", True)
    if not isinstance(namespaced, bool):
        raise ConfigError(f"{where}: 'namespaced' must be true or false")
    columns = tuple(
        _printer_column(column, f"{where}.printerColumns[{i}]")
        for i, column in enumerate(_list(item, "printerColumns", where))
    )
    try:
        return ResourceSpec(
            group=group,
            resource=resource,
            kind=kind,
            namespaced=namespaced,
            versions=versions,
            printer_columns=columns,
        )
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None


_COLUMN_KEYS = {"name": str, "type": str, "jsonPath": str, "description": str, "priority": int, "format": str}


def _printer_column(item: object, where: str) -> PrinterColumn:
    """A CRD's ``additionalPrinterColumns`` entry, checked as kube-apiserver checks those."""
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: want a mapping with name, type and jsonPath")
    unknown = set(item) - set(_COLUMN_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    for key in ("name", "type", "jsonPath"):
        if key not in item:
            raise ConfigError(f"{where}: '{key}' is required")
    for key, kind in _COLUMN_KEYS.items():
        value = item.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise ConfigError(f"{where}: '{key}' must be {'an integer' if kind is int else 'a string'}")
    try:
        return PrinterColumn(
            name=item["name"],
            type=item["type"],
            json_path=item["jsonPath"],
            description=item.get("description") or "",
            priority=item.get("priority") or 0,
            format=item.get("format") or "",
        )
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None


def _tenant(item: object, where: str) -> TenantConfig:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: want a mapping")
    unknown = set(item) - {"name", "groups", "readGroups", "tokens", "limits"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    name = _str(item, "name", where, _DNS_SUBDOMAIN, "a DNS subdomain")
    return TenantConfig(
        name=name,
        groups=_strings(item, "groups", where, _DNS_SUBDOMAIN),
        read_groups=_strings(item, "readGroups", where, _DNS_SUBDOMAIN),
        tokens=_strings(item, "tokens", where, None),
        limits=_limits(item.get("limits"), f"{where}.limits"),
    )


_LIMIT_KEYS = {
    "requestsPerSecond": ("requests_per_second", float),
    "burst": ("burst", int),
    "maxInFlight": ("max_in_flight", int),
    "maxQueued": ("max_queued", int),
    "maxWatches": ("max_watches", int),
    "maxObjects": ("max_objects", int),
    "maxBytes": ("max_bytes", int),
    "maxRequestBytes": ("max_request_bytes", int),
    "maxJSONDepth": ("max_json_depth", int),
    "maxObjectBytes": ("max_object_bytes", int),
    "maxBytesInFlight": ("max_bytes_in_flight", int),
    "maxConnections": ("max_connections", int),
}


def _limits(item: object, where: str) -> TenantLimits:
    if item is None:
        return TenantLimits()
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: want a mapping")
    values: dict[str, Any] = {}
    for key, value in item.items():
        if key not in _LIMIT_KEYS:
            raise ConfigError(f"{where}: unknown limit {key!r} (known: {', '.join(_LIMIT_KEYS)})")
        field, kind = _LIMIT_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{where}: {key} must be a positive number")
        if kind is int and value != int(value):
            raise ConfigError(f"{where}: {key} must be a whole number")
        values[field] = kind(value)
    return TenantLimits(**values)
