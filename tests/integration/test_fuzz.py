"""Hypothesis fuzzing of the running HTTP service with malformed requests of every kind.

One service (three tenants, as in test_security) runs on an event loop of its own in a background
thread, so that it keeps serving — and its watches keep streaming — between examples. Before fuzzing,
one watch per tenant is opened. Each example sends one raw request (any method; paths with random
segments, dot segments, percent-encodings, NULs and very long names; every query parameter of the
SPEC with random values; Content-Type, Accept and Authorization variants; random, deep, huge,
non-UTF-8 or non-JSON bodies) and checks the answer: a Kubernetes Status with a 4xx code (504 Timeout
only for a resourceVersion the cache cannot reach), never another 5xx nor a dropped connection, and a
2xx only where the caller may read (or, for a write, write) the group of the path. After fuzzing: the
service is healthy, every watch is still open and receives a fresh write, the etcd keyspace outside
the tenants' groups is unchanged, and nothing was logged at ERROR.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, unquote

import aetcd
import aiohttp
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support.etcd import etcd_client
from support.loop_thread import LoopThread
from support.patches import doubling_patch
from support.tenants import RESOURCES as WORLD_RESOURCES
from yarl import URL

from watchcache.cache.settings import CacheSettings
from watchcache.config import parse_config
from watchcache.service import Service, ServiceOptions

pytestmark = pytest.mark.etcd

T = TypeVar("T")

TOKENS = {"wardle": "wardle-token", "acme": "acme-token", "auditor": "auditor-token"}
WRITABLE = {
    "wardle": {"wardle.example.com"},
    "acme": {"acme.example.com", "shared.example.com"},
    "auditor": set(),
}
READABLE = {
    "wardle": {"wardle.example.com", "shared.example.com"},
    "acme": {"acme.example.com", "shared.example.com"},
    "auditor": {"wardle.example.com"},
}
RESOURCES = [r.config for r in WORLD_RESOURCES]
GROUPS = sorted({r["group"] for r in RESOURCES})
OPEN_PATHS = {"/healthz", "/livez", "/readyz", "/version"}
# High rates: the fuzzer should reach the handlers, not bounce off the rate limit.
FAST = {"requestsPerSecond": 100000, "burst": 100000}
CONFIG = yaml.safe_dump(
    {
        "resources": RESOURCES,
        "tenants": [
            {
                "name": "wardle",
                "groups": ["wardle.example.com"],
                "readGroups": ["shared.example.com"],
                "tokens": [TOKENS["wardle"]],
                "limits": {**FAST, "maxRequestBytes": 200000},
            },
            {
                "name": "acme",
                "groups": ["acme.example.com", "shared.example.com"],
                "tokens": [TOKENS["acme"]],
                "limits": FAST,
            },
            {
                "name": "auditor",
                "groups": [],
                "readGroups": ["wardle.example.com"],
                "tokens": [TOKENS["auditor"]],
                "limits": FAST,
            },
        ],
    }
)
WATCHES = {
    "wardle": "/apis/wardle.example.com/v1alpha1/flunders",
    "acme": "/apis/acme.example.com/v1/widgets",
    "auditor": "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders",
}


# -- what is sent -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FuzzRequest:
    method: str
    path: str
    """Already percent-encoded (sent as is)."""
    query: str
    """Already encoded, without the '?'; '' for none."""
    headers: dict[str, str]
    body: bytes | None
    huge: int = 0
    """When set, the body is an object with a string of this many bytes (built when sent, so that
    Hypothesis never has to print it)."""

    @property
    def payload(self) -> bytes | None:
        if self.huge:
            return orjson.dumps({"metadata": {"name": "huge"}, "spec": {"data": "x" * self.huge}})
        return self.body

    @property
    def caller(self) -> str | None:
        """The tenant the Authorization header names by a valid bearer token, if any."""
        value = self.headers.get("Authorization")
        if not value:
            return None
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return next((tenant for tenant, t in TOKENS.items() if t == token.strip()), None)


def _encode(text: str) -> str:
    return quote(text, safe="")


printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
anytext = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)

segment = st.one_of(
    st.sampled_from(
        [
            *GROUPS,
            "nope.example.com",
            "v1alpha1",
            "v1",
            "v2",
            "namespaces",
            "default",
            "kube-system",
            "flunders",
            "fischers",
            "widgets",
            "gadgets",
            "seed",
            "x",
            "",
            ".",
            "..",
            "%2e",
            "%2E%2e",
            "%2F",
            "..%2F..",
            "..%2F..%2Facme.example.com",
            "%00",
            "a%00b",
            "%ff",
            "%",
            "%zz",
            "%25",
            "%252F",
            "a%2Fb",
            "A",
            "UPPER",
            "%C3%A9",
            "~",
            "*",
            "-",
            "a" * 254,
            "n" * 64,
            "x" * 5000,
        ]
    ),
    anytext.map(_encode),
    st.text(printable.filter(lambda c: c not in "/?# %"), min_size=1, max_size=20),
)


@st.composite
def paths(draw: st.DrawFn) -> str:
    kind = draw(
        st.sampled_from(["resource", "resource", "resource", "resource", "apis", "apis", "top", "long"])
    )
    if kind == "resource":
        # A served resource's path, valid but for (sometimes) one segment swapped for a weird one.
        res = draw(st.sampled_from(RESOURCES))
        parts = ["apis", res["group"], res["versions"][0]]
        if res.get("namespaced", True) and draw(st.integers(0, 4)):
            parts += ["namespaces", draw(st.sampled_from(["default", "default", "other"]))]
        parts.append(res["resource"])
        if draw(st.booleans()):
            parts.append(draw(st.sampled_from(["seed", "seed", "fuzz-obj", "x"])))
        if draw(st.integers(0, 2)) == 0:
            parts[draw(st.integers(1, len(parts) - 1))] = draw(segment)
        return "/" + "/".join(parts)
    if kind == "apis":
        group = draw(st.one_of(st.sampled_from([*GROUPS, "nope.example.com"]), segment))
        version = draw(st.one_of(st.sampled_from(["v1alpha1", "v1", "v1beta1"]), segment))
        shape = draw(
            st.sampled_from(
                [
                    [],
                    ["{r}"],
                    ["{r}", "{n}"],
                    ["namespaces", "{ns}", "{r}"],
                    ["namespaces", "{ns}", "{r}", "{n}"],
                    ["namespaces", "{ns}", "{r}", "{n}", "{x}"],
                    ["{x}"],
                ]
            )
        )
        fill = {
            "{r}": st.one_of(st.sampled_from(["flunders", "fischers", "widgets", "gadgets"]), segment),
            "{ns}": st.one_of(st.sampled_from(["default", "other"]), segment),
            "{n}": st.one_of(st.sampled_from(["seed", "x", "fuzz-obj"]), segment),
            "{x}": segment,
        }
        tail = [draw(fill[part]) if part in fill else part for part in shape]
        path = "/".join(["/apis", group, version, *tail])
        if draw(st.booleans()) and not shape:
            path = draw(st.sampled_from(["/apis", f"/apis/{group}"]))
        return path + draw(st.sampled_from(["", "", "", "/", "//"]))
    if kind == "top":
        base = draw(
            st.sampled_from(
                [
                    "/",
                    "/api",
                    "/api/v1",
                    "/apis",
                    "/openapi/v2",
                    "/openapi/v3",
                    "/openapi/v3/apis",
                    "/openapi/v3/apis/wardle.example.com/v1alpha1",
                    "/openapi/v3/apis/acme.example.com/v1",
                    "/healthz",
                    "/livez",
                    "/readyz",
                    "/version",
                    "/metrics",
                    "/nothing",
                    "/apis/../metrics",
                    "/%2e%2e/apis",
                ]
            )
        )
        extra = draw(st.lists(segment, max_size=3))
        return "/".join([base.rstrip("/") or "", *extra]) if extra else base
    return "/apis/" + "a" * draw(st.sampled_from([300, 5000, 16000, 20000]))


def _token(data: object) -> str:
    """A continue token of watchcache's own format (base64url JSON), with whatever it says."""
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


# Forged continue tokens: well formed, but for a revision ahead of everything, a compacted one, or
# with start keys that try to leave the resource.
FORGED_TOKENS = [
    _token({"v": "watchcache/v1", "rv": rv, "start": start})
    for rv in (1, 2, 10**12, 2**62, 2**63 - 1)
    for start in ("default/seed\u0000", "../../", "\u0000", "zzz")
] + [
    _token({"v": "watchcache/v1", "rv": "5", "start": "a"}),
    _token({"v": "watchcache/v1", "rv": -1, "start": "a"}),
    _token({"v": "watchcache/v1", "rv": 3, "start": "x" * 2000}),
    _token({"v": "watchcache/v1", "rv": 3.5, "start": "a"}),
    _token({"v": "watchcache/v1", "rv": 2**70, "start": "a"}),
    _token([1, 2]),
]

QUERY_VALUES: dict[str, list[str]] = {
    "resourceVersion": [
        "",
        "0",
        "1",
        "2",
        "999999999999",
        "99999999999999999999",
        "-1",
        "abc",
        "1.5",
        "0x10",
    ],
    "resourceVersionMatch": ["", "NotOlderThan", "Exact", "exact", "MostRecent", "garbage"],
    "limit": ["", "0", "1", "2", "500", "-1", "abc", "99999999999999999999999"],
    "continue": ["", "garbage", "eyJ2IjoxfQ", "%%%", "e30", "eyJ2Ijoid2F0Y2hjYWNoZS92MSJ9", *FORGED_TOKENS],
    "labelSelector": [
        "",
        "app=x",
        "app in (x,y)",
        "!app",
        "app",
        "app!=x",
        "!!!",
        "a=b=c",
        "in (",
        "x" * 300,
    ],
    "fieldSelector": [
        "",
        "metadata.name=seed",
        "metadata.namespace=default",
        "metadata.name!=x",
        "spec.x=y",
        "metadata.name",
        "=",
    ],
    "watch": ["", "true", "false", "1", "0", "yes", "TRUE"],
    "allowWatchBookmarks": ["", "true", "false", "maybe"],
    "sendInitialEvents": ["", "true", "false", "nope"],
    "timeoutSeconds": ["", "0", "1", "-1", "abc", "99999999999999999999"],
    "fieldValidation": ["", "Ignore", "Warn", "Strict", "strict", "Bogus"],
    "hash": ["", "abc"],
    "pretty": ["true"],
    "dryRun": ["All", "", "None", "all"],
}


@st.composite
def queries(draw: st.DrawFn) -> str:
    names = draw(st.lists(st.sampled_from([*QUERY_VALUES, "random"]), max_size=6))
    parts = []
    for drawn in names:
        name = draw(anytext.map(_encode)) if drawn == "random" else drawn
        pool = QUERY_VALUES.get(name, [""])
        # Either a value (encoded) or a raw, malformed percent-encoding (sent as is).
        encoded = draw(
            st.one_of(
                st.sampled_from(pool).map(_encode),
                anytext.map(_encode),
                st.sampled_from(["%zz", "%", "%00", "%ff", "%C3", "%%%"]),
            )
        )
        parts.append(f"{name}={encoded}" if draw(st.integers(0, 9)) else name)
    # A watch that would be valid needs an end: most carry a timeout.
    if "watch=true" in parts and draw(st.booleans()):
        parts.append("timeoutSeconds=1")
    return "&".join(parts)


AUTHORIZATIONS = [
    None,
    *(f"Bearer {t}" for t in TOKENS.values()),
    *(f"Bearer {t}" for t in TOKENS.values()),
    "bearer wardle-token",
    "Bearer  acme-token ",
    "Bearer wrong-token",
    "Bearer",
    "Bearer ",
    "Basic d2FyZGxlOndhcmRsZS10b2tlbg==",
    "Token acme-token",
    "wardle-token",
    "Bearer wardle-token acme-token",
]
CONTENT_TYPES = [
    None,
    "application/json",
    "application/json",
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    "application/json; charset=utf-8",
    "application/vnd.kubernetes.protobuf",
    "text/plain",
    "",
    "garbage",
    "application/json; charset=latin-1",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
]
ACCEPTS = [
    None,
    "application/json",
    "*/*",
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "x/y",
]


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**64 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        anytext,
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(anytext, children, max_size=4)
        ),
        max_leaves=20,
    )


@st.composite
def k8s_objects(draw: st.DrawFn) -> dict[str, Any]:
    """Objects that look like ours, with random identity fields."""
    obj: dict[str, Any] = {}
    if draw(st.booleans()):
        obj["apiVersion"] = draw(
            st.one_of(
                st.sampled_from(
                    ["wardle.example.com/v1alpha1", "acme.example.com/v1", "shared.example.com/v1", "v1"]
                ),
                _json_values(),
            )
        )
    if draw(st.booleans()):
        obj["kind"] = draw(
            st.one_of(st.sampled_from(["Flunder", "Fischer", "Widget", "Gadget"]), _json_values())
        )
    meta = draw(
        st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.one_of(
                        st.sampled_from(["seed", "x", "fuzz-obj", "..", "a/b", ""]), _json_values()
                    ),
                    "namespace": st.one_of(st.sampled_from(["default", "other", "..", ""]), _json_values()),
                    "generateName": st.one_of(st.sampled_from(["gen-", "../", "A"]), _json_values()),
                    "resourceVersion": st.one_of(st.sampled_from(["1", "0", "x", ""]), _json_values()),
                    "uid": _json_values(),
                    "labels": st.one_of(st.dictionaries(anytext, anytext, max_size=3), _json_values()),
                },
            ),
            _json_values(),
        )
    )
    if draw(st.booleans()):
        obj["metadata"] = meta
    if draw(st.booleans()):
        obj["spec"] = draw(_json_values())
    if draw(st.booleans()):
        obj["preconditions"] = draw(
            st.one_of(st.fixed_dictionaries({"resourceVersion": anytext}), _json_values())
        )
    return obj


PATCH_BOMBS: list[list[dict[str, Any]]] = [
    [{"op": "add", "path": "/spec", "value": {}}, *doubling_patch(25, seed=["x" * 64])],
    # Copying a node into its own child, again and again: deeper each time.
    [{"op": "add", "path": "/spec", "value": {"a": {}}}]
    + [{"op": "copy", "from": "/spec", "path": "/spec/a/b"} for _ in range(80)],
    [{"op": "move", "from": "/spec", "path": "/spec/a"}],
    [{"op": "test", "path": "/metadata/name", "value": "seed"}] * 20_000,
]


@st.composite
def bodies(draw: st.DrawFn) -> bytes | int | None:
    """A body, or (for a huge one) its size."""
    kind = draw(
        st.sampled_from(
            ["none", "object", "object", "json", "patch", "bomb", "deep", "huge", "utf8", "binary", "text"]
        )
    )
    if kind == "none":
        return None
    if kind == "object":
        return orjson.dumps(draw(k8s_objects()))
    if kind == "json":
        return json.dumps(draw(_json_values())).encode()
    if kind == "patch":
        ops = st.fixed_dictionaries(
            {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus"])},
            optional={
                "path": st.one_of(st.sampled_from(["/metadata/name", "/spec", "/", "", "/a/-"]), anytext),
                "from": anytext,
                "value": _json_values(),
            },
        )
        return json.dumps(draw(st.lists(ops, max_size=3))).encode()
    if kind == "bomb":
        return json.dumps(draw(st.sampled_from(PATCH_BOMBS))).encode()
    if kind == "deep":
        depth = draw(st.sampled_from([65, 100, 1000, 5000, 100000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        tail = closer * depth if draw(st.booleans()) else ""
        return (opener * depth + "1" + tail).encode()
    if kind == "huge":
        return draw(st.sampled_from([70_000, 250_000, 3_200_000]))
    if kind == "utf8":
        return b'{"metadata": {"name": "\xff\xfe"}, "spec": "\xc3\x28"}'
    if kind == "binary":
        return draw(st.binary(max_size=300))
    return draw(st.text(max_size=100)).encode("utf-8", "surrogatepass")


@st.composite
def requests(draw: st.DrawFn) -> FuzzRequest:
    headers: dict[str, str] = {}
    valid_token = st.sampled_from([f"Bearer {t}" for t in TOKENS.values()])
    authorization = draw(
        st.one_of(valid_token, valid_token, st.sampled_from(AUTHORIZATIONS), st.text(printable, max_size=30))
    )
    path = draw(paths())
    # Mostly a method that fits the path (a collection or an object), so that requests get past routing.
    collection = path.rsplit("/", 1)[-1] in {"flunders", "fischers", "widgets", "gadgets"}
    fitting = ["GET", "POST"] if collection else ["GET", "PUT", "PATCH", "DELETE"]
    method = draw(
        st.one_of(
            st.sampled_from(fitting),
            st.sampled_from(fitting),
            st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "FOO"]),
        )
    )
    likely_type = {"PATCH": "application/merge-patch+json"}.get(method, "application/json")
    content_type = draw(
        st.one_of(st.just(likely_type), st.sampled_from(CONTENT_TYPES), st.text(printable, max_size=30))
    )
    accept = draw(st.one_of(st.sampled_from(ACCEPTS), st.text(printable, max_size=30)))
    for name, value in (("Authorization", authorization), ("Content-Type", content_type), ("Accept", accept)):
        if value is not None:
            headers[name] = value
    body = draw(bodies())
    return FuzzRequest(
        method=method,
        path=path,
        query=draw(queries()),
        headers=headers,
        body=body if not isinstance(body, int) else None,
        huge=body if isinstance(body, int) else 0,
    )


# -- the service under fuzzing ---------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    streaming: bool


@dataclass
class WatchReader:
    """One open watch, read into ``events`` by a task until it ends."""

    tenant: str
    response: aiohttp.ClientResponse
    events: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def read(self) -> None:
        while line := await self.response.content.readline():
            self.events.append(orjson.loads(line))

    def names(self) -> set[str]:
        return {e["object"]["metadata"].get("name", "") for e in self.events if e["type"] != "BOOKMARK"}


class _ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Harness(LoopThread):
    """The service, a client session, an etcd client and the tenants' watches, on a loop thread."""

    def __init__(self, endpoints: list[str], prefix: str) -> None:
        super().__init__("fuzz-service-loop")
        self.endpoints = endpoints
        self.prefix = prefix
        self.service: Service | None = None
        self.session: aiohttp.ClientSession | None = None
        self.kv: aetcd.Client | None = None
        self.watches: dict[str, WatchReader] = {}
        self.errors = _ErrorLog()

    @property
    def url(self) -> str:
        assert self.service is not None
        return self.service.url

    async def start(self) -> None:
        options = ServiceOptions(
            config=parse_config(CONFIG),
            etcd_servers=tuple(self.endpoints),
            etcd_prefix=self.prefix,
            port=0,
            # Unreachable resourceVersions answer 504 quickly rather than after 3 s.
            cache=CacheSettings(wait_timeout=0.2),
        )
        self.service = Service(options)
        await self.service.start()
        assert self.service.storage is not None
        await self.service.storage.wait_ready(10)
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        self.kv = etcd_client(self.endpoints[0])
        await self.kv.connect()
        for tenant, path in (
            ("wardle", "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders"),
            ("acme", "/apis/acme.example.com/v1/namespaces/default/widgets"),
            ("acme", "/apis/shared.example.com/v1/namespaces/default/gadgets"),
        ):
            reply = await self.write(tenant, path, "seed")
            assert reply.status == 201, reply
        for tenant, path in WATCHES.items():
            response = await self.session.get(
                URL(self.url + path, encoded=True).with_query(watch="true"),
                headers={"Authorization": f"Bearer {TOKENS[tenant]}"},
            )
            assert response.status == 200, (tenant, response.status)
            reader = WatchReader(tenant, response)
            reader.task = asyncio.create_task(reader.read(), name=f"fuzz-watch-{tenant}")
            self.watches[tenant] = reader
        logging.getLogger("watchcache").addHandler(self.errors)

    async def stop(self) -> None:
        logging.getLogger("watchcache").removeHandler(self.errors)
        for reader in self.watches.values():
            reader.response.close()
            if reader.task is not None:
                reader.task.cancel()
        await asyncio.gather(*(r.task for r in self.watches.values() if r.task), return_exceptions=True)
        if self.session is not None:
            await self.session.close()
        if self.kv is not None:
            await self.kv.close()
        if self.service is not None:
            await self.service.stop()

    async def write(self, tenant: str, collection: str, name: str) -> Reply:
        group, version = collection.split("/")[2:4]
        kind = {"flunders": "Flunder", "widgets": "Widget", "gadgets": "Gadget"}[collection.rsplit("/", 1)[1]]
        body = orjson.dumps({"apiVersion": f"{group}/{version}", "kind": kind, "metadata": {"name": name}})
        return await self.send(
            FuzzRequest(
                "POST",
                collection,
                "",
                {"Authorization": f"Bearer {TOKENS[tenant]}", "Content-Type": "application/json"},
                body,
            )
        )

    async def send(self, req: FuzzRequest) -> Reply:
        assert self.session is not None
        url = URL(self.url + req.path + (f"?{req.query}" if req.query else ""), encoded=True)
        async with asyncio.timeout(30):
            payload = req.payload
            async with self.session.request(
                req.method,
                url,
                # aiohttp warns that large raw bytes block the loop; a stream is sent in pieces.
                data=io.BytesIO(payload) if payload is not None and len(payload) > 65536 else payload,
                headers=req.headers,
                skip_auto_headers={"Content-Type", "Accept", "Accept-Encoding", "User-Agent"},
            ) as resp:
                streaming = resp.headers.get("Transfer-Encoding", "").lower() == "chunked"
                # A watch that was accepted streams for a long time: its head is the answer.
                body = b"" if streaming else await resp.read()
                return Reply(resp.status, dict(resp.headers), body, streaming)

    async def keyspace(self) -> dict[bytes, int]:
        """Every key with its mod_revision, except those under a tenant group's prefix."""
        assert self.kv is not None
        inside = tuple(f"{self.prefix}/{g}/".encode() for g in GROUPS)
        result = await self.kv.get_all(keys_only=True)
        return {kv.key: kv.mod_revision for kv in result if not kv.key.startswith(inside)}


@pytest.fixture
def harness(etcd_endpoints: list[str], prefix: str) -> Iterator[Harness]:
    h = Harness(etcd_endpoints, prefix)
    with h.serving():
        yield h


# -- the oracle --------------------------------------------------------------------------------------------


def _status(reply: Reply) -> dict[str, Any] | None:
    try:
        body = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) and body.get("kind") == "Status" else None


# What aiohttp's HTTP parser itself refuses, before any handler runs, with a plain-text 400 (as Go's
# net/http does for kube-apiserver): methods it does not know and request lines over its limit.
KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
MAX_LINE = 16384


def too_long(req: FuzzRequest) -> bool:
    return len(req.method) + len(req.path) + len(req.query) + 12 > MAX_LINE


def refused_by_http_parser(req: FuzzRequest, reply: Reply) -> bool:
    malformed = req.method not in KNOWN_METHODS or too_long(req)
    return (
        malformed and reply.status == 400 and reply.headers.get("Content-Type", "").startswith("text/plain")
    )


def check(req: FuzzRequest, reply: Reply) -> None:
    """What every answer must be, whatever was asked."""
    where = f"{req.method} {req.path[:200]}?{req.query[:200]} {req.headers} body={(req.body or b'')[:100]!r}"
    if reply.status >= 500:
        status = _status(reply)
        assert reply.status == 504 and status is not None and status["reason"] == "Timeout", (
            f"{reply.status} {reply.body[:300]!r} for {where}"
        )
        assert "resourceVersion=" in req.query or "continue=" in req.query, (
            f"504 without a resourceVersion: {where}"
        )
        return
    if reply.status >= 400:
        if req.method != "HEAD" and not refused_by_http_parser(req, reply):
            status = _status(reply)
            assert status is not None, f"{reply.status} is not a Status: {reply.body[:300]!r} for {where}"
            assert status["code"] == reply.status and status["status"] == "Failure", where
            assert isinstance(status["message"], str) and isinstance(status["reason"], str), where
        return
    assert 200 <= reply.status < 300, f"{reply.status} for {where}"
    plain = unquote(req.path)
    if plain.rstrip("/") in OPEN_PATHS and req.method == "GET":
        return
    caller = req.caller
    assert caller is not None, f"{reply.status} without valid credentials for {where}"
    # Whatever the path says (or resolves to), an answer never names a group the caller may not
    # read — no object, list, discovery or OpenAPI document of it. (/metrics is not per tenant.)
    if plain.rstrip("/") != "/metrics":
        hidden = [g for g in GROUPS if g not in READABLE[caller] and g.encode() in reply.body]
        assert not hidden, f"{caller} was shown {hidden}: {reply.body[:300]!r} for {where}"
    segments = req.path.split("/")
    if req.path.startswith(("/apis/", "/openapi/v3/apis/")):
        group = unquote(segments[2] if req.path.startswith("/apis/") else segments[4])
        if group:
            assert group in READABLE[caller], f"{caller} got {reply.status} on {group}: {where}"
            if req.method not in ("GET", "HEAD"):
                assert group in WRITABLE[caller], f"{caller} wrote to {group}: {where}"
                obj = orjson.loads(reply.body)
                assert str(obj.get("apiVersion", "")).split("/")[0] == group, f"{obj} for {where}"


# -- the test ------------------------------------------------------------------------------------------------


def test_malformed_requests_never_crash_leak_or_break_watches(harness: Harness) -> None:
    """Any malformed request gets a 4xx Status (or an allowed 2xx), never a 5xx or a dropped connection."""
    before = harness.run(harness.keyspace())
    sent: list[int] = []

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
        # No shrinking: every example is real I/O; a failing one is printed as drawn.
        phases=[Phase.explicit, Phase.generate],
    )
    @given(req=requests())
    def one(req: FuzzRequest) -> None:
        try:
            reply = harness.run(harness.send(req))
        except aiohttp.ClientResponseError as err:
            # The parser answers an over-long request line with 400 and closes at once; the client
            # may then fail to read that answer whole. Anything else is a dropped connection.
            if too_long(req) and err.status == 400:
                return
            raise AssertionError(f"connection dropped ({err!r}) for {req.method} {req.path[:200]}") from err
        except aiohttp.ClientError as err:
            raise AssertionError(f"connection dropped ({err!r}) for {req.method} {req.path[:200]}") from err
        sent.append(reply.status)
        check(req, reply)
        ended = [t for t, w in harness.watches.items() if w.task is None or w.task.done()]
        assert not ended, f"the watches of {ended} ended after {req}"

    one()
    assert len(sent) >= 100

    async def after() -> None:
        # With a tenant's token: the fuzz's own requests without valid credentials may have emptied
        # this address's anonymous bucket (429 is then the right answer to an anonymous probe).
        auth = {"Authorization": f"Bearer {TOKENS['wardle']}"}
        async with aiohttp.ClientSession() as session:
            for path in ("/healthz", "/readyz"):
                async with session.get(harness.url + path, headers=auth) as resp:
                    assert resp.status == 200, path
        for tenant, collection in (
            ("wardle", "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders"),
            ("acme", "/apis/acme.example.com/v1/namespaces/default/widgets"),
        ):
            reply = await harness.write(tenant, collection, "after-fuzz")
            assert reply.status == 201, reply
        deadline = asyncio.get_running_loop().time() + 10
        for tenant, reader in harness.watches.items():
            while "after-fuzz" not in reader.names():
                assert reader.task is not None and not reader.task.done(), f"{tenant}'s watch ended"
                assert asyncio.get_running_loop().time() < deadline, f"{tenant}'s watch got no event"
                await asyncio.sleep(0.05)

    harness.run(after())
    assert harness.run(harness.keyspace()) == before
    assert harness.errors.records == [], [r.getMessage() for r in harness.errors.records]
