"""A world of three tenants for the security and hardening tests: its resources, configuration,
service, and what etcd holds.

Tenants: ``wardle`` (writes wardle.example.com, reads shared.example.com), ``acme`` (writes
acme.example.com and shared.example.com) and ``auditor`` (reads wardle.example.com only).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aetcd
import yaml

from watchcache.config import parse_config
from watchcache.service import Service, ServiceOptions

from .certs import CertFiles, TestCA
from .rest import JSON, Api, Reply

__all__ = ["JSON"]

MERGE_PATCH = "application/merge-patch+json"
TOKENS = {"wardle": "wardle-token", "acme": "acme-token", "auditor": "auditor-token"}
WRITE_VERBS = ("CREATE", "UPDATE", "PATCH", "DELETE")
READ_VERBS = ("LIST", "GET", "WATCH")
ALL_VERBS = READ_VERBS + WRITE_VERBS


@dataclass(frozen=True)
class Res:
    """One served resource and its URLs."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool

    def collection(self, namespace: str | None = "default") -> str:
        scope = f"namespaces/{namespace}/" if self.namespaced and namespace else ""
        return f"/apis/{self.group}/{self.version}/{scope}{self.resource}"

    def item(self, name: str, namespace: str = "default") -> str:
        return f"{self.collection(namespace)}/{name}"

    def obj(self, name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if self.namespaced:
            meta["namespace"] = namespace
        return {
            "apiVersion": f"{self.group}/{self.version}",
            "kind": self.kind,
            "metadata": meta,
            "spec": spec,
        }

    @property
    def config(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "versions": [self.version],
            "resource": self.resource,
            "kind": self.kind,
            "namespaced": self.namespaced,
        }


FLUNDERS = Res("wardle.example.com", "v1alpha1", "flunders", "Flunder", True)
FISCHERS = Res("wardle.example.com", "v1alpha1", "fischers", "Fischer", False)
WIDGETS = Res("acme.example.com", "v1", "widgets", "Widget", True)
GADGETS = Res("shared.example.com", "v1", "gadgets", "Gadget", True)
RESOURCES = (FLUNDERS, FISCHERS, WIDGETS, GADGETS)
GROUPS = sorted({r.group for r in RESOURCES})


def config_text(limits: Mapping[str, Mapping[str, float]] | None = None) -> str:
    """The YAML configuration of the three tenants, with optional ``limits:`` per tenant."""
    tenants: list[dict[str, Any]] = [
        {
            "name": "wardle",
            "groups": ["wardle.example.com"],
            "readGroups": ["shared.example.com"],
            "tokens": [TOKENS["wardle"]],
        },
        {"name": "acme", "groups": ["acme.example.com", "shared.example.com"], "tokens": [TOKENS["acme"]]},
        {
            "name": "auditor",
            "groups": [],
            "readGroups": ["wardle.example.com"],
            "tokens": [TOKENS["auditor"]],
        },
    ]
    for tenant in tenants:
        if limits and tenant["name"] in limits:
            tenant["limits"] = dict(limits[tenant["name"]])
    return yaml.safe_dump({"resources": [r.config for r in RESOURCES], "tenants": tenants})


@asynccontextmanager
async def service(
    config_yaml: str, endpoints: Sequence[str], prefix: str, **options: Any
) -> AsyncIterator[Service]:
    """A started in-process service with ``config_yaml``, its caches loaded (``options``: the rest of
    :class:`ServiceOptions`)."""
    opts = ServiceOptions(
        config=parse_config(config_yaml),
        etcd_servers=tuple(endpoints),
        etcd_prefix=prefix,
        port=0,
        **options,
    )
    async with Service(opts) as svc:
        assert svc.storage is not None
        await svc.storage.wait_ready(10)
        yield svc


@asynccontextmanager
async def serve(
    endpoints: Sequence[str],
    prefix: str,
    *,
    limits: Mapping[str, Mapping[str, float]] | None = None,
    **options: Any,
) -> AsyncIterator[Service]:
    """A started service over the three tenants, its caches loaded."""
    async with service(config_text(limits), endpoints, prefix, **options) as svc:
        yield svc


def is_progress_key(key: bytes) -> bool:
    """Whether ``key`` is a cache's progress key ``{prefix}/{group}/{resource}`` (rewritten by
    consistent reads of that resource: not an object, and inside the resource's own group)."""
    return any(key.endswith(f"/{r.group}/{r.resource}".encode()) for r in RESOURCES)


async def keyspace(kv: aetcd.Client, *, outside: Sequence[str] = ()) -> dict[bytes, int]:
    """Every key in etcd with its mod_revision, except the caches' progress keys and the keys under
    one of the ``outside`` prefixes."""
    prefixes = tuple(p.encode() for p in outside)
    result = await kv.get_all(keys_only=True)
    return {
        item.key: item.mod_revision
        for item in result
        if not item.key.startswith(prefixes) and not is_progress_key(item.key)
    }


async def stored(kv: aetcd.Client, prefix: str, group: str) -> dict[bytes, int]:
    """Object keys (and their mod_revisions) under ``{prefix}/{group}/``, without the caches'
    progress keys (``{prefix}/{group}/{resource}``)."""
    base = f"{prefix}/{group}/".encode()
    result = await kv.get_prefix(base, keys_only=True)
    return {item.key: item.mod_revision for item in result if b"/" in item.key[len(base) :]}


def client_ssl(ca: TestCA, cert: CertFiles | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca.cert_file)
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    return context


async def call_verb(api: Api, verb: str, res: Res, name: str, namespace: str = "default") -> Reply:
    """One of LIST, GET, WATCH, CREATE, UPDATE, PATCH, DELETE on ``res`` (object ``name``)."""
    if verb == "LIST":
        return await api.call("GET", res.collection(namespace))
    if verb == "GET":
        return await api.call("GET", res.item(name, namespace))
    if verb == "WATCH":
        return await api.watch_status(res.collection(namespace))
    if verb == "CREATE":
        return await api.call("POST", res.collection(namespace), body=res.obj(name + "-new", namespace))
    if verb == "UPDATE":
        return await api.call("PUT", res.item(name, namespace), body=res.obj(name, namespace, changed=True))
    if verb == "PATCH":
        return await api.call(
            "PATCH", res.item(name, namespace), body={"spec": {"patched": True}}, content_type=MERGE_PATCH
        )
    if verb == "DELETE":
        return await api.call("DELETE", res.item(name, namespace))
    raise ValueError(verb)
