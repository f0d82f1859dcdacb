"""Differential test: random sequences of KV, Txn and Watch operations sent to a real etcd and to the
etcd front give identical answers.

Both sides share one etcd: the direct side works under one key prefix, the front's tenant under its own
group. Each operation goes to the direct side, then the same to the front. Answers are compared whole,
once normalised: keys lose their side's prefix, and every revision becomes "how many of this side's
own writes had happened by it" (the two sides' writes interleave in one etcd, and the front's
consistent reads may write its progress key). Watches opened before the operations must see the same
events. Header member and cluster ids are etcd's on both sides and compared as they are.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
import yaml
from aetcd.rpc import rpc_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.etcd import host_port, unique_prefix
from support.etcdv3 import EtcdV3, RpcFailed, WatchStream
from support.loop_thread import LoopThread

from watchcache.config import parse_config
from watchcache.service import Service, ServiceOptions

pytestmark = pytest.mark.etcd

T = TypeVar("T")
TOKEN = "wardle-token"
CONFIG = yaml.safe_dump(
    {
        "resources": [
            {"group": "wardle.example.com", "versions": ["v1"], "resource": "flunders", "kind": "Flunder"}
        ],
        "tenants": [{"name": "wardle", "groups": ["wardle.example.com"], "tokens": [TOKEN]}],
    }
)
SUFFIXES = ["default/a", "default/b", "default/c", "other/a", "x", "default/b/deeper"]
VALUES = [
    b'{"metadata":{"name":"a"}}',
    b'{"spec":1}',
    b"plain text",
    b"",
    b'{"metadata":{"labels":{"k":"v"}}}',
]


# -- operations ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    kind: str
    suffix: str = ""
    end: str | None = None
    value: bytes = b""
    limit: int = 0
    flags: frozenset[str] = frozenset()
    at_write: int = 0
    """For a range at a past revision: which of this side's writes (0: now)."""
    compare: tuple[str, int] = ("mod", 0)


ranges_end = st.sampled_from([None, "", "default/", "default0", "z", "other0"])
ops = st.one_of(
    st.builds(Op, kind=st.just("put"), suffix=st.sampled_from(SUFFIXES), value=st.sampled_from(VALUES)),
    st.builds(Op, kind=st.just("delete"), suffix=st.sampled_from(SUFFIXES), end=ranges_end),
    st.builds(
        Op,
        kind=st.just("range"),
        suffix=st.sampled_from(["", *SUFFIXES]),
        end=ranges_end,
        limit=st.sampled_from([0, 0, 1, 2]),
        flags=st.frozensets(st.sampled_from(["keys_only", "count_only", "serializable"])),
        at_write=st.sampled_from([0, 0, 0, 1, 2, 3]),
    ),
    st.builds(
        Op,
        kind=st.just("txn"),
        suffix=st.sampled_from(SUFFIXES),
        value=st.sampled_from(VALUES),
        compare=st.tuples(st.sampled_from(["mod", "version", "create"]), st.integers(0, 3)),
    ),
)


@dataclass
class Side:
    """One side: its client, its key prefix, its writes' revisions and its watch."""

    client: EtcdV3
    base: bytes
    writes: list[int] = field(default_factory=list)
    stream: WatchStream | None = None

    def key(self, suffix: str) -> bytes:
        return self.base + suffix.encode()

    def end(self, end: str | None) -> bytes:
        if end is None:
            return b""
        return self.base[:-1] + b"0" if end == "" else self.base + end.encode()

    def rev(self, revision: int) -> int:
        """An absolute revision as how many of this side's writes came at or before it."""
        return bisect.bisect_right(self.writes, revision)

    def abs_rev(self, write: int) -> int:
        return self.writes[write - 1] if 0 < write <= len(self.writes) else 0

    def noted(self, answer: Any) -> None:
        """Remember the revision of a write that changed something."""
        revision = answer.header.revision
        if not self.writes or revision > self.writes[-1]:
            self.writes.append(revision)

    def kv(self, kv: Any) -> tuple[Any, ...]:
        return (
            kv.key[len(self.base) :] if kv.key.startswith(self.base) else kv.key,
            kv.value,
            self.rev(kv.create_revision),
            self.rev(kv.mod_revision),
            kv.version,
            kv.lease,
        )


async def apply(side: Side, op: Op) -> Any:
    """``op`` on ``side``: its answer, normalised (see the module docstring)."""
    try:
        if op.kind == "put":
            answer = await side.client.put(side.key(op.suffix), op.value, prev_kv=True)
            side.noted(answer)
            return ("put", side.kv(answer.prev_kv) if answer.HasField("prev_kv") else None)
        if op.kind == "delete":
            before = len(side.writes)
            answer = await side.client.delete(side.key(op.suffix), side.end(op.end), prev_kv=True)
            if answer.deleted:
                side.noted(answer)
            assert len(side.writes) in (before, before + 1)
            return ("delete", answer.deleted, sorted(side.kv(kv) for kv in answer.prev_kvs))
        if op.kind == "range":
            key = side.key(op.suffix) if op.suffix else side.base
            request = rpc_pb2.RangeRequest(
                key=key,
                range_end=side.end(op.end),
                limit=op.limit,
                revision=side.abs_rev(op.at_write),
                **{flag: True for flag in op.flags},
            )
            answer = await side.client.call("KV", "Range", request)
            return ("range", [side.kv(kv) for kv in answer.kvs], answer.more, answer.count)
        target, number = op.compare
        key = side.key(op.suffix)
        compare = rpc_pb2.Compare(result=rpc_pb2.Compare.EQUAL, key=key)
        if target == "mod":
            compare.target, compare.mod_revision = rpc_pb2.Compare.MOD, side.abs_rev(number)
        elif target == "create":
            compare.target, compare.create_revision = rpc_pb2.Compare.CREATE, side.abs_rev(number)
        else:
            compare.target, compare.version = rpc_pb2.Compare.VERSION, number
        put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=op.value))
        get = rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))
        answer = await side.client.txn([compare], [put], [get])
        if answer.succeeded:
            side.noted(answer)
        ranges = [
            [side.kv(kv) for kv in r.response_range.kvs]
            for r in answer.responses
            if r.HasField("response_range")
        ]
        return ("txn", answer.succeeded, len(answer.responses), ranges)
    except RpcFailed as err:
        return ("error", err.code, err.message)


async def watched(side: Side) -> list[tuple[Any, ...]]:
    """Every event the side's watch has received so far (reading until it is quiet)."""
    assert side.stream is not None
    events: list[tuple[Any, ...]] = []
    while True:
        try:
            answer = await side.stream.read(within=0.5)
        except TimeoutError:
            return events
        for e in answer.events:
            events.append((e.type, side.kv(e.kv), side.kv(e.prev_kv) if e.HasField("prev_kv") else None))


# -- the harness: a service on a loop of its own -------------------------------------------------------------


class Harness(LoopThread):
    def __init__(self, endpoints: list[str], prefix: str) -> None:
        super().__init__("differential-loop", timeout=120.0)
        self.endpoints = endpoints
        self.prefix = prefix
        self.service: Service | None = None
        self.examples = 0

    async def start(self) -> None:
        options = ServiceOptions(
            config=parse_config(CONFIG),
            etcd_servers=tuple(self.endpoints),
            etcd_prefix=self.prefix,
            port=0,
            etcd_listen_port=0,
        )
        self.service = Service(options)
        await self.service.start()
        assert self.service.storage is not None
        await self.service.storage.wait_ready(10)

    async def stop(self) -> None:
        if self.service is not None:
            await self.service.stop()

    async def example(self, operations: list[Op]) -> None:
        assert self.service is not None
        self.examples += 1
        n = self.examples
        host, port = host_port(self.endpoints[0])
        async with EtcdV3(self.service.etcd_endpoint) as anonymous:
            token = await anonymous.authenticate("wardle", TOKEN)
        async with (
            EtcdV3(f"{host}:{port}") as direct,
            EtcdV3(self.service.etcd_endpoint, token=token) as front,
            direct.watch_stream() as direct_watch,
            front.watch_stream() as front_watch,
        ):
            sides = [
                Side(direct, f"{self.prefix}-direct/wardle.example.com/flunders/e{n}/".encode()),
                Side(front, f"{self.prefix}/wardle.example.com/flunders/e{n}/".encode()),
            ]
            for side, stream in zip(sides, (direct_watch, front_watch), strict=True):
                side.stream = stream
                await stream.create(side.base, side.base[:-1] + b"0", prev_kv=True)
                created = await stream.read()
                assert created.created and not created.canceled
            for op in operations:
                theirs, ours = await apply(sides[0], op), await apply(sides[1], op)
                assert ours == theirs, f"{op}: etcd {theirs} front {ours}"
            theirs_events, our_events = await watched(sides[0]), await watched(sides[1])
            assert our_events == theirs_events


@pytest.fixture(scope="module")
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    etcd = request.getfixturevalue("etcd")
    h = Harness(etcd.endpoints, unique_prefix())
    with h.serving():
        yield h


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(ops, min_size=1, max_size=15))
def test_random_operations_answer_as_etcd_answers(harness: Harness, operations: list[Op]) -> None:
    """Any sequence of puts, deletes, ranges (limits, past revisions, keys-only, count-only) and
    transactions gets from the front what it gets from etcd, and both watches see the same events."""
    harness.run(harness.example(operations))
