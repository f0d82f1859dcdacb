"""The etcd v3 front against a real etcd: etcd's own answers, from the caches, within a tenant's keyspace.

Each test starts watchcache with ``--etcd-listen-port`` over the session etcd (its own key prefix) and
two tenants, and talks raw etcd protobufs to it (tests/support/etcdv3.py) — beside a direct client of
the same etcd, so that what the front answers is compared with what etcd itself answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import orjson
import pytest
import yaml
from aetcd.rpc import rpc_pb2
from support.certs import CertFiles, TestCA
from support.etcd import EtcdServer, host_port
from support.etcdv3 import EtcdV3, RpcFailed, WatchStream, prefix_end
from support.waiting import retry, wait_until
from support.wardle import flunder_key, flunders_layout

from watchcache.cache.settings import CacheSettings
from watchcache.config import parse_config
from watchcache.etcdserver.errors import passed_on
from watchcache.service import Service, ServiceOptions

pytestmark = pytest.mark.etcd

TOKENS = {"wardle": "wardle-token", "acme": "acme-token"}


def config(limits: dict[str, int] | None = None) -> str:
    resources = [
        {"group": "wardle.example.com", "versions": ["v1alpha1"], "resource": "flunders", "kind": "Flunder"},
        {"group": "acme.example.com", "versions": ["v1"], "resource": "widgets", "kind": "Widget"},
        {"group": "shared.example.com", "versions": ["v1"], "resource": "gadgets", "kind": "Gadget"},
    ]
    tenants = [
        {
            "name": "wardle",
            "groups": ["wardle.example.com"],
            "readGroups": ["shared.example.com"],
            "tokens": [TOKENS["wardle"]],
            **({"limits": limits} if limits else {}),
        },
        {"name": "acme", "groups": ["acme.example.com", "shared.example.com"], "tokens": [TOKENS["acme"]]},
    ]
    return yaml.safe_dump({"resources": resources, "tenants": tenants})


@asynccontextmanager
async def front(
    endpoints: list[str], prefix: str, *, limits: dict[str, int] | None = None, **options: Any
) -> AsyncIterator[Service]:
    """watchcache with the etcd front over ``endpoints`` (``limits``: wardle's, if not the defaults)."""
    opts = ServiceOptions(
        config=parse_config(config(limits)),
        etcd_servers=tuple(endpoints),
        etcd_prefix=prefix,
        port=0,
        etcd_listen_port=0,
        **options,
    )
    async with Service(opts) as svc:
        assert svc.storage is not None
        await svc.storage.wait_ready(10)
        yield svc


@asynccontextmanager
async def tenant(svc: Service, name: str) -> AsyncIterator[EtcdV3]:
    async with EtcdV3(svc.etcd_endpoint) as anonymous:
        token = await anonymous.authenticate(name, TOKENS[name])
    async with EtcdV3(svc.etcd_endpoint, token=token) as client:
        yield client


@pytest.fixture
async def svc(etcd_endpoints: list[str], prefix: str) -> AsyncIterator[Service]:
    async with front(etcd_endpoints, prefix) as service:
        yield service


@pytest.fixture
async def wardle(svc: Service) -> AsyncIterator[EtcdV3]:
    async with tenant(svc, "wardle") as client:
        yield client


@pytest.fixture
async def acme(svc: Service) -> AsyncIterator[EtcdV3]:
    async with tenant(svc, "acme") as client:
        yield client


@pytest.fixture
async def direct(etcd_endpoints: list[str]) -> AsyncIterator[EtcdV3]:
    host, port = host_port(etcd_endpoints[0])
    async with EtcdV3(f"{host}:{port}") as client:
        yield client


def value(name: str, **spec: Any) -> bytes:
    return orjson.dumps({"metadata": {"name": name, "namespace": "default"}, "spec": spec})


def kvs(answer: Any) -> list[tuple[bytes, bytes, int, int, int, int]]:
    return [
        (kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease) for kv in answer.kvs
    ]


def put_op(key: bytes, val: bytes) -> Any:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=val))


def get_op(key: bytes) -> Any:
    return rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))


def mod_is(key: bytes, revision: int) -> Any:
    return rpc_pb2.Compare(
        result=rpc_pb2.Compare.EQUAL, target=rpc_pb2.Compare.MOD, key=key, mod_revision=revision
    )


# -- ranges: etcd's answers, from the cache ----------------------------------------------------------------


async def test_ranges_from_the_cache_are_etcds_answers(
    svc: Service, wardle: EtcdV3, direct: EtcdV3, prefix: str
) -> None:
    """Single keys, prefixes, pages (limit, more, count over the whole range), count-only,
    keys-only and past revisions: the front's answers are etcd's, field by field."""
    for i in range(7):
        await direct.put(flunder_key(prefix, f"f{i}"), value(f"f{i}", n=i))
    await direct.put(flunder_key(prefix, "f3"), value("f3", n=33))
    revision = (await direct.delete(flunder_key(prefix, "f5"))).header.revision
    await direct.put(flunder_key(prefix, "f6"), b"not json at all")
    start = flunders_layout(prefix).resource_prefix
    cases = [
        {"key": flunder_key(prefix, "f3")},
        {"key": flunder_key(prefix, "absent")},
        {"key": start, "range_end": prefix_end(start)},
        {"key": start, "range_end": prefix_end(start), "limit": 2},
        {"key": flunder_key(prefix, "f2"), "range_end": prefix_end(start), "limit": 3},
        {"key": start, "range_end": prefix_end(start), "count_only": True},
        {"key": start, "range_end": prefix_end(start), "count_only": True, "limit": 2},
        {"key": start, "range_end": prefix_end(start), "keys_only": True, "limit": 4},
        {"key": start, "range_end": prefix_end(start), "revision": revision - 1},
        {"key": start, "range_end": prefix_end(start), "serializable": True},
    ]
    assert svc.etcd_front is not None
    forwarded = svc.etcd_front.front.forwarded
    for case in cases:
        passed = forwarded["KV.Range"]
        ours = await wardle.call("KV", "Range", rpc_pb2.RangeRequest(**case))
        assert forwarded["KV.Range"] == passed, f"{case} was not answered from the cache"
        theirs = await direct.call("KV", "Range", rpc_pb2.RangeRequest(**case))
        assert kvs(ours) == kvs(theirs), case
        assert (ours.more, ours.count) == (theirs.more, theirs.count), case
        assert (
            ours.header.revision >= theirs.header.revision - 1
            and ours.header.cluster_id == theirs.header.cluster_id
        )
    future = (await direct.range(b"\0", count_only=True)).header.revision + 100
    with pytest.raises(RpcFailed) as refused:
        await wardle.range(start, prefix_end(start), revision=future)
    assert refused.value == RpcFailed(
        grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision"
    )


async def test_a_range_at_a_past_revision_is_headed_by_etcds_current_revision(
    svc: Service, wardle: EtcdV3, direct: EtcdV3, prefix: str
) -> None:
    """etcd heads an answer at a past revision with its current revision. The cache answering it may
    not have seen the latest writes (here one outside every resource, which no cache sees), yet its
    answer is headed by etcd's revision too — never an older one, which a client that had just
    written would see as its revision going back."""
    start = f"{prefix}/wardle.example.com/flunders/".encode()
    past = (await direct.put(flunder_key(prefix, "h"), value("h"))).header.revision
    later = (await direct.put(f"{prefix}/elsewhere".encode(), b"x")).header.revision
    assert svc.etcd_front is not None
    passed = svc.etcd_front.front.forwarded["KV.Range"]
    ours = await wardle.range(start, prefix_end(start), revision=past)
    assert svc.etcd_front.front.forwarded["KV.Range"] == passed, "not answered from the cache"
    theirs = await direct.range(start, prefix_end(start), revision=past)
    assert kvs(ours) == kvs(theirs) and (ours.count, ours.more) == (theirs.count, theirs.more)
    assert ours.header.revision >= later


async def test_a_consistent_range_sees_every_earlier_write(
    wardle: EtcdV3, direct: EtcdV3, prefix: str
) -> None:
    """A linearizable range (revision 0) through the front contains a write made straight to etcd
    just before it, and its header revision is at least that write's."""
    start = flunders_layout(prefix).resource_prefix
    for i in range(20):
        written = await direct.put(flunder_key(prefix, f"c{i}"), value(f"c{i}"))
        answer = await wardle.range(start, prefix_end(start))
        assert flunder_key(prefix, f"c{i}") in [kv.key for kv in answer.kvs]
        assert answer.header.revision >= written.header.revision


async def test_a_passed_through_watch_has_every_change_after_its_created_revision(
    svc: Service, wardle: EtcdV3, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A watch no cache holds (here, a whole group) is an etcd watch of its own. "Created at N" promises
    every change after N even when the client writes before that etcd watch exists: the test holds the
    upstream watch's creation until it has written, and the write is still delivered."""
    assert svc.etcd_front is not None
    etcd = svc.etcd_front.front.etcd
    written = asyncio.Event()
    opened = etcd.forward_stream

    def held(service: str, method: str, **kwargs: Any) -> Any:
        upstream = opened(service, method, **kwargs)
        write = upstream.write

        async def write_after_the_client(request: Any) -> None:
            await written.wait()
            await write(request)

        upstream.write = write_after_the_client
        return upstream

    monkeypatch.setattr(etcd, "forward_stream", held)
    group = f"{prefix}/wardle.example.com/".encode()
    async with wardle.watch_stream() as stream:
        await stream.create(group, prefix_end(group))
        created = await stream.read()
        assert created.created
        put = await wardle.put(group + b"other/x", value("x"))
        written.set()
        [event] = await stream.events(1)
        assert (event.kv.key, event.kv.mod_revision) == (group + b"other/x", put.header.revision)
        assert put.header.revision == created.header.revision + 1


async def test_progress_keys_are_never_seen(svc: Service, wardle: EtcdV3, prefix: str) -> None:
    """The caches' progress keys (``{prefix}/{group}/{resource}``) exist after a consistent read, but
    a range of that exact key (kube-apiserver's GetCurrentResourceVersion), a range over the whole
    group, or a watch of the group never shows one."""
    resource = f"{prefix}/wardle.example.com/flunders".encode()
    group = f"{prefix}/wardle.example.com/".encode()
    async with wardle.watch_stream() as stream:
        await stream.create(group, prefix_end(group))
        assert (await stream.read()).created
        await wardle.put(flunder_key(prefix, "p"), value("p"))
        assert svc.storage is not None
        flunders = svc.storage.resources[0]
        await flunders.cache.sync()  # a consistent read that writes the progress key
        writes = flunders.stats.progress_writes
        await wardle.put(resource + b"/default/q", value("q"))
        events = await stream.events(2)
        assert [e.kv.key for e in events] == [flunder_key(prefix, "p"), resource + b"/default/q"]
    exact = await wardle.range(resource, limit=1)
    assert exact.kvs == [] and exact.count == 0 and exact.header.revision > 0
    whole = await wardle.range(group, prefix_end(group))
    assert [kv.key for kv in whole.kvs] == [flunder_key(prefix, "p"), resource + b"/default/q"]
    assert whole.count == 2
    counted = await wardle.range(group, prefix_end(group), count_only=True, limit=1)
    assert (counted.count, counted.more, list(counted.kvs)) == (2, False, [])
    assert writes >= 0


# -- writes: k8s.io/apiserver's transactions ---------------------------------------------------------------


async def test_apiserver_transactions_answer_as_etcd(wardle: EtcdV3, direct: EtcdV3, prefix: str) -> None:
    """Create (``ModRevision==0 ? Put``), GuaranteedUpdate and delete (``ModRevision==rev ? Put|Delete :
    Get``): success and failure give etcd's layout — no responses for a failed create, the current
    KeyValue in ``responses[0]`` for a failed update or delete."""
    key = flunder_key(prefix, "t")
    create = await wardle.txn([mod_is(key, 0)], [put_op(key, value("t"))], [])
    assert create.succeeded and len(create.responses) == 1
    again = await wardle.txn([mod_is(key, 0)], [put_op(key, value("t"))], [])
    assert not again.succeeded and list(again.responses) == []
    rev = create.header.revision
    stale = await wardle.txn([mod_is(key, rev - 1)], [put_op(key, value("t", n=2))], [get_op(key)])
    assert not stale.succeeded
    assert [kv.mod_revision for kv in stale.responses[0].response_range.kvs] == [rev]
    update = await wardle.txn([mod_is(key, rev)], [put_op(key, value("t", n=2))], [get_op(key)])
    assert update.succeeded
    delete = rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key))
    gone = await wardle.txn([mod_is(key, update.header.revision)], [delete], [get_op(key)])
    assert gone.succeeded and gone.responses[0].response_delete_range.deleted == 1
    assert (await direct.range(key)).kvs == []


async def test_compact_rev_key_is_each_tenants_own_and_compact_does_nothing(
    wardle: EtcdV3, acme: EtcdV3, direct: EtcdV3, prefix: str
) -> None:
    """The compactor's root-level ``compact_rev_key`` is a private key per tenant (each with its own
    version clock); Compact is accepted and compacts nothing in the shared etcd."""
    key = b"compact_rev_key"

    def version_is(v: int) -> Any:
        return rpc_pb2.Compare(
            result=rpc_pb2.Compare.EQUAL, target=rpc_pb2.Compare.VERSION, key=key, version=v
        )

    first = await wardle.txn([version_is(0)], [put_op(key, b"5")], [get_op(key)])
    assert first.succeeded
    stale = await wardle.txn([version_is(0)], [put_op(key, b"6")], [get_op(key)])
    assert not stale.succeeded
    kv = stale.responses[0].response_range.kvs[0]
    assert (kv.key, kv.value, kv.version) == (key, b"5", 1)
    theirs = await acme.txn([version_is(0)], [put_op(key, b"9")], [get_op(key)])
    assert theirs.succeeded  # acme's clock is its own
    assert (await direct.range(key)).kvs == []  # the real root key is untouched
    before = (await direct.range(b"\0", count_only=True)).header.revision
    await wardle.call("KV", "Compact", rpc_pb2.CompactionRequest(revision=before))
    # A revision of this test's, older than the Compact's, is still readable: nothing was compacted.
    # (Not an older one: other tests may compact the shared etcd, but never past their own writes.)
    old = await direct.range(flunder_key(prefix, "none"), revision=first.header.revision)
    assert old.header.revision >= before


# -- tenancy -------------------------------------------------------------------------------------------------


async def test_a_tenant_reaches_nothing_outside_its_keyspace(
    wardle: EtcdV3, acme: EtcdV3, direct: EtcdV3, prefix: str
) -> None:
    """Every way out is PermissionDenied (and writes nothing): another tenant's group, a range whose end
    passes its prefix, a "from key" (``\\0``) end, the ``\\0`` key, a compare or an operation of a
    transaction, a nested transaction, a watch; a read-only group reads but never writes."""
    denied = RpcFailed(grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied")
    mine = f"{prefix}/wardle.example.com/".encode()
    theirs = f"{prefix}/acme.example.com/widgets/default/w".encode()
    shared = f"{prefix}/shared.example.com/gadgets/default/g".encode()
    await acme.put(theirs, value("w"))
    await acme.put(shared, value("g"))
    before = await direct.range(b"\0", b"\0", keys_only=True)
    attempts = [
        wardle.range(theirs),
        wardle.range(mine, prefix_end(mine) + b"x"),
        wardle.range(mine, b"\0"),
        wardle.range(b"\0", b"\0"),
        wardle.range(f"{prefix}/".encode(), prefix_end(f"{prefix}/".encode())),
        wardle.put(theirs, b"x"),
        wardle.put(shared, b"x"),
        wardle.delete(mine, b"\0"),
        wardle.txn([mod_is(theirs, 0)], [], []),
        wardle.txn([], [put_op(theirs, b"x")], []),
        wardle.txn([], [], [put_op(shared, b"x")]),
        wardle.txn(
            [],
            [rpc_pb2.RequestOp(request_txn=rpc_pb2.TxnRequest(success=[put_op(theirs, b"x")]))],
            [],
        ),
    ]
    for attempt in attempts:
        with pytest.raises(RpcFailed) as refused:
            await attempt
        assert refused.value == denied
    assert [kv.key for kv in (await wardle.range(shared)).kvs] == [shared]  # read-only: readable
    async with wardle.watch_stream() as stream:
        await stream.create(theirs)
        answer = await stream.read()
        assert answer.created and answer.canceled and answer.watch_id == -1
        assert "permission denied" in answer.cancel_reason
    assert await direct.range(b"\0", b"\0", keys_only=True) == before


async def test_credentials(svc: Service) -> None:
    """Auth.Authenticate takes a tenant's name and one of its tokens; a wrong one, no token, or a
    token it never gave are etcd's errors."""
    async with EtcdV3(svc.etcd_endpoint) as anonymous:
        with pytest.raises(RpcFailed) as wrong:
            await anonymous.authenticate("wardle", TOKENS["acme"])
        assert wrong.value == RpcFailed(
            grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: authentication failed, invalid user ID or password"
        )
        with pytest.raises(RpcFailed) as nobody:
            await anonymous.range(b"/x")
        assert nobody.value == RpcFailed(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: user name is empty")
    async with EtcdV3(svc.etcd_endpoint, token="made.up") as forged:
        with pytest.raises(RpcFailed) as invalid:
            await forged.range(b"/x")
        assert invalid.value == RpcFailed(grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token")


# -- watches ------------------------------------------------------------------------------------------------


async def test_watch_from_a_revision_with_prev_kv_is_etcds_watch(
    wardle: EtcdV3, direct: EtcdV3, prefix: str
) -> None:
    """kube-apiserver's watch (prefix, start revision = list revision + 1, prev_kv, progress_notify):
    the front's events are etcd's, field by field — prev_kv on updates and deletes, none on creates,
    a delete's kv holding only its key and revision."""
    start = flunders_layout(prefix).resource_prefix
    base = (await direct.put(flunder_key(prefix, "w0"), value("w0"))).header.revision
    await direct.put(flunder_key(prefix, "w1"), value("w1"))
    await direct.put(flunder_key(prefix, "w0"), value("w0", n=2))
    await direct.delete(flunder_key(prefix, "w1"))

    async def events_of(client: EtcdV3) -> list[Any]:
        async with client.watch_stream() as stream:
            await stream.create(
                start, prefix_end(start), start_revision=base, prev_kv=True, progress_notify=True
            )
            created = await stream.read()
            assert created.created and not created.canceled
            return await stream.events(4)

    ours, theirs = await events_of(wardle), await events_of(direct)
    assert [e.SerializeToString() for e in ours] == [e.SerializeToString() for e in theirs]
    assert [(e.type, e.HasField("prev_kv")) for e in ours] == [(0, False), (0, False), (0, True), (1, True)]


async def test_responses_larger_than_a_frame_arrive_whole(
    wardle: EtcdV3, direct: EtcdV3, prefix: str
) -> None:
    """Watch responses bigger than the client's frame size (16 KiB for gRPC clients) are cut into
    several DATA frames: values of 20 KiB to 300 KiB, with prev_kv, arrive byte for byte as etcd's own
    watch sends them."""
    start = flunders_layout(prefix).resource_prefix
    base = 0
    for i, size in enumerate((20_000, 70_000, 300_000, 16_384)):
        put = await direct.put(flunder_key(prefix, "big"), value("big", i=i, pad="x" * size))
        base = base or put.header.revision

    async def events_of(client: EtcdV3) -> list[Any]:
        async with client.watch_stream() as stream:
            await stream.create(start, prefix_end(start), start_revision=base, prev_kv=True)
            assert (await stream.read()).created
            return await stream.events(4)

    ours, theirs = await events_of(wardle), await events_of(direct)
    assert [e.SerializeToString() for e in ours] == [e.SerializeToString() for e in theirs]
    assert len(ours[2].kv.value) > 300_000


async def test_many_watches_share_the_cache_and_get_every_event_in_order(
    svc: Service, wardle: EtcdV3, direct: EtcdV3, prefix: str
) -> None:
    """Twenty watches of one prefix on four streams are twenty watchers of the one cache (no etcd
    watch of their own); each gets every change, once, in order; cancelling one answers canceled."""
    assert svc.storage is not None
    flunders = svc.storage.resources[0]
    start = flunders_layout(prefix).resource_prefix
    async with (
        wardle.watch_stream() as s1,
        wardle.watch_stream() as s2,
        wardle.watch_stream() as s3,
        wardle.watch_stream() as s4,
    ):
        streams = [s1, s2, s3, s4]
        for stream in streams:
            for _ in range(5):
                await stream.create(start, prefix_end(start))
                assert (await stream.read()).created
        assert flunders.watcher_count >= 20
        revisions = [
            (await direct.put(flunder_key(prefix, f"m{i}"), value(f"m{i}"))).header.revision
            for i in range(10)
        ]
        for stream in streams:
            got = await stream.events(50)
            by_watch = [e.kv.mod_revision for e in got]
            assert sorted(by_watch) == sorted(revisions * 5)
        await s1.cancel(0)
        cancelled = await s1.read()
        assert cancelled.canceled and cancelled.watch_id == 0


async def test_watches_opened_at_once_share_revision_reads_and_miss_nothing(
    svc: Service, wardle: EtcdV3, direct: EtcdV3, prefix: str
) -> None:
    """Forty watches opened at once from "now" (start_revision 0) on forty streams of one connection:
    etcd's current revision is read a few times, not forty, yet each watch starts at or after a write
    acknowledged before it was opened; then every watch gets every later change, once, in order —
    sent on the shared connection as the changes come."""
    assert svc.etcd_front is not None
    front = svc.etcd_front.front
    start = flunders_layout(prefix).resource_prefix
    before = (await direct.put(flunder_key(prefix, "before"), value("before"))).header.revision
    reads = front.revision_reads
    async with contextlib.AsyncExitStack() as stack:
        streams = [await stack.enter_async_context(wardle.watch_stream()) for _ in range(40)]

        async def open_watch(stream: WatchStream) -> Any:
            await stream.create(start, prefix_end(start))
            return await stream.read()

        created = await asyncio.gather(*(open_watch(stream) for stream in streams))
        assert all(c.created and c.header.revision >= before for c in created)
        assert front.revision_reads - reads <= 4, "one revision read per watch"
        revisions = [
            (await direct.put(flunder_key(prefix, f"a{i}"), value(f"a{i}", n=i))).header.revision
            for i in range(20)
        ]
        for stream in streams:
            assert [e.kv.mod_revision for e in await stream.events(20)] == revisions


async def etcd_watchers(etcd: EtcdServer) -> int:
    """How many watchers etcd has (its ``etcd_debugging_mvcc_watcher_total`` gauge)."""
    async with aiohttp.ClientSession() as http, http.get(etcd.endpoints[0] + "/metrics") as resp:
        text = await resp.text()
    [line] = [line for line in text.splitlines() if line.startswith("etcd_debugging_mvcc_watcher_total ")]
    return int(float(line.split()[1]))


async def test_a_watch_older_than_the_window_is_compacted_without_an_etcd_watch(
    own_etcd: EtcdServer, prefix: str
) -> None:
    """A watch of a cached prefix from a revision the cache's window no longer holds is answered as etcd
    answers a compacted start revision — ``created``, then ``canceled`` with no reason and
    ``compact_revision`` the oldest revision the window replays from — and costs no etcd watch (etcd's
    watcher count is unchanged). A watch from that revision replays the window, with a new id."""
    window = CacheSettings(window_events=2)
    async with front(own_etcd.endpoints, prefix, cache=window) as svc, tenant(svc, "wardle") as wardle:
        start = f"{prefix}/wardle.example.com/flunders/".encode()
        written = [
            (await wardle.put(flunder_key(prefix, f"o{i}"), value(f"o{i}"))).header.revision for i in range(4)
        ]
        assert svc.storage is not None
        await svc.storage.resources[0].cache.wait_for(written[-1], 5)
        watchers = await etcd_watchers(own_etcd)
        async with wardle.watch_stream() as stream:
            await stream.create(start, prefix_end(start), start_revision=written[0], prev_kv=True)
            created = await stream.read()
            assert created.created and not created.canceled
            answer = await stream.read()
            assert (answer.watch_id, answer.canceled, answer.cancel_reason) == (created.watch_id, True, "")
            assert list(answer.events) == [] and written[1] < answer.compact_revision <= written[2]
            assert await etcd_watchers(own_etcd) == watchers

            await stream.create(start, prefix_end(start), start_revision=answer.compact_revision)
            again = await stream.read()
            assert again.created and not again.canceled and again.watch_id != created.watch_id
            assert [e.kv.mod_revision for e in await stream.events(2)] == written[2:]


async def test_an_ended_watch_gives_its_place_back(own_etcd: EtcdServer, prefix: str) -> None:
    """A tenant's watches count against its ``maxWatches`` while they are open, not for as long as their
    stream lasts: a client cancelling and re-creating watches on one stream (as clientv3 does when the
    apiserver re-watches), or answered "compacted" — by the front's window, or by etcd for a watch
    passed to it — can go on watching."""
    window = CacheSettings(window_events=1)
    async with (
        front(own_etcd.endpoints, prefix, limits={"maxWatches": 2}, cache=window) as svc,
        tenant(svc, "wardle") as wardle,
        wardle.watch_stream() as stream,
    ):
        start = f"{prefix}/wardle.example.com/flunders/".encode()
        group = f"{prefix}/wardle.example.com/".encode()
        first = (await wardle.put(flunder_key(prefix, "a"), value("a"))).header.revision
        last = (await wardle.put(flunder_key(prefix, "a"), value("a", n=2))).header.revision
        host, port = host_port(own_etcd.endpoints[0])
        async with EtcdV3(f"{host}:{port}") as direct:
            await direct.call("KV", "Compact", rpc_pb2.CompactionRequest(revision=last))
        for _ in range(3):
            await stream.create(start, prefix_end(start))
            created = await stream.read()
            assert created.created and not created.canceled, created
            await stream.cancel(created.watch_id)
            assert (await stream.read()).canceled
        for key in (start, group):  # the window's answer; etcd's, for a watch passed to it
            for _ in range(3):
                await stream.create(key, prefix_end(key), start_revision=first)
                created = await stream.read()
                assert created.created and not created.canceled, created
                assert (await stream.read()).compact_revision > first
        await stream.create(start, prefix_end(start))
        await stream.create(start, prefix_end(start))
        assert [(await stream.read()).canceled for _ in range(2)] == [False, False]
        await stream.create(start, prefix_end(start))
        refused = await stream.read()
        assert (refused.canceled, refused.cancel_reason) == (True, "etcdserver: too many requests")


async def test_request_progress_comes_after_every_event_it_covers(
    wardle: EtcdV3, direct: EtcdV3, prefix: str
) -> None:
    """A RequestProgress answer (``watch_id -1``) carries a revision at least etcd's when asked, and
    arrives after every event up to it (what kube-apiserver's consistent reads rely on)."""
    start = flunders_layout(prefix).resource_prefix
    async with wardle.watch_stream() as stream:
        await stream.create(start, prefix_end(start), progress_notify=True)
        assert (await stream.read()).created
        for i in range(20):
            written = (await direct.put(flunder_key(prefix, f"r{i}"), value(f"r{i}"))).header.revision
            await stream.request_progress()
            seen = 0
            while True:
                answer = await stream.read()
                if answer.events:
                    seen = max(seen, answer.events[-1].kv.mod_revision)
                    continue
                if answer.watch_id == -1:
                    break
            assert answer.header.revision >= written
            assert seen == written, "the progress notification overtook an event"


async def test_request_progress_is_never_behind_an_event_already_sent(
    wardle: EtcdV3, direct: EtcdV3, prefix: str
) -> None:
    """While changes keep coming, a RequestProgress answer's revision is never below an event the
    stream has already sent — kube-apiserver takes it as its cache's resourceVersion, which must not
    go back — and no event up to it comes after it. The stream also watches a resource nobody
    writes, whose cache must catch up first (a progress-key write), while the other keeps sending."""
    flunders = flunders_layout(prefix).resource_prefix
    gadgets = f"{prefix}/shared.example.com/gadgets/".encode()

    async def keep_writing() -> None:
        for i in itertools.count():
            await direct.put(flunder_key(prefix, f"k{i % 10}"), value("k", n=i))

    async with wardle.watch_stream() as stream:
        for start in (flunders, gadgets):
            await stream.create(start, prefix_end(start))
            assert (await stream.read()).created
        writer = asyncio.create_task(keep_writing())
        try:
            sent, covered, answered = 0, 0, 0
            await stream.request_progress()
            while answered < 30:
                answer = await stream.read()
                for event in answer.events:
                    assert event.kv.mod_revision > covered, (
                        "an event came after a progress answer covering it"
                    )
                    sent = max(sent, event.kv.mod_revision)
                if answer.watch_id == -1 and not answer.events:
                    assert answer.header.revision >= sent, (
                        "the progress answer is behind an event already sent"
                    )
                    covered = answer.header.revision
                    answered += 1
                    await stream.request_progress()
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)


async def test_one_cache_two_fronts(svc: Service, wardle: EtcdV3, prefix: str) -> None:
    """An object written through the REST front appears on an etcd-front watch, and one written
    through the etcd front appears in a REST list, in the same order."""
    start = flunders_layout(prefix).resource_prefix
    rest = svc.url + "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders"
    auth = {"Authorization": f"Bearer {TOKENS['wardle']}"}
    async with wardle.watch_stream() as stream, aiohttp.ClientSession(headers=auth) as http:
        await stream.create(start, prefix_end(start))
        assert (await stream.read()).created
        async with http.post(rest, json={"metadata": {"name": "via-rest"}}) as resp:
            assert resp.status == 201
        await wardle.put(flunder_key(prefix, "via-etcd"), value("via-etcd"))
        events = await stream.events(2)
        assert [e.kv.key for e in events] == [
            flunder_key(prefix, "via-rest"),
            flunder_key(prefix, "via-etcd"),
        ]
        async with http.get(rest) as resp:
            names = [item["metadata"]["name"] for item in (await resp.json())["items"]]
        assert names == ["via-etcd", "via-rest"]


# -- leases, maintenance, the rest ---------------------------------------------------------------------------


async def test_leases_belong_to_the_tenant_that_granted_them(
    wardle: EtcdV3, acme: EtcdV3, direct: EtcdV3, prefix: str
) -> None:
    """A lease is passed to etcd and owned by its grantor: to another tenant it does not exist."""
    granted = await wardle.call("Lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=60))
    lease = granted.ID
    await wardle.put(flunder_key(prefix, "leased"), value("leased"), lease=lease)
    with pytest.raises(RpcFailed) as foreign:
        await acme.call("Lease", "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=lease))
    assert foreign.value == RpcFailed(grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found")
    ttl = await acme.call("Lease", "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=lease))
    assert ttl.TTL == -1
    assert lease not in [
        s.ID for s in (await acme.call("Lease", "LeaseLeases", rpc_pb2.LeaseLeasesRequest())).leases
    ]
    mine = await wardle.call("Lease", "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=lease, keys=True))
    assert list(mine.keys) == [flunder_key(prefix, "leased")]
    await wardle.call("Lease", "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=lease))
    await wait_until(lambda: _absent(direct, flunder_key(prefix, "leased")), message="the leased key expires")


async def _absent(client: EtcdV3, key: bytes) -> bool:
    return not (await client.range(key)).kvs


async def test_status_and_what_is_not_served(wardle: EtcdV3) -> None:
    """Maintenance.Status is etcd's, reporting at least 3.4.31 (ordered RequestProgress); calls the
    front does not serve answer Unimplemented at once."""
    status = await wardle.call("Maintenance", "Status", rpc_pb2.StatusRequest())
    major, minor, patch = (int(p) for p in status.version.split(".")[:3])
    assert (major, minor, patch) >= (3, 4, 31) and status.dbSize > 0
    for service, method, request in [
        ("Maintenance", "Defragment", rpc_pb2.DefragmentRequest()),
        ("Auth", "UserAdd", rpc_pb2.AuthUserAddRequest(name="x")),
        ("Cluster", "MemberList", rpc_pb2.MemberListRequest()),
    ]:
        with pytest.raises(RpcFailed) as refused:
            async with asyncio.timeout(5):
                await wardle.call(service, method, request)
        assert refused.value.code == grpc.StatusCode.UNIMPLEMENTED


# -- TLS, and etcd going away -------------------------------------------------------------------------------


def channel_credentials(ca: TestCA, cert: CertFiles | None) -> Any:
    """gRPC TLS credentials trusting ``ca``, presenting ``cert`` when given."""
    root = Path(ca.cert_file).read_bytes()
    if cert is None:
        return grpc.ssl_channel_credentials(root_certificates=root)
    return grpc.ssl_channel_credentials(
        root_certificates=root,
        private_key=Path(cert.key).read_bytes(),
        certificate_chain=Path(cert.cert).read_bytes(),
    )


async def test_client_certificates_name_the_tenant_over_tls(
    etcd_endpoints: list[str], prefix: str, serving_cert: CertFiles, test_ca: TestCA
) -> None:
    """Over TLS with a client CA (kube-apiserver's ``--etcd-cafile/--etcd-certfile/--etcd-keyfile``),
    the certificate's CN is the tenant; a client without one is a stranger until it authenticates with
    a tenant's token, as etcd asks a client without a certificate for a user."""
    options = {
        "tls_cert_file": serving_cert.cert,
        "tls_private_key_file": serving_cert.key,
        "client_ca_file": test_ca.cert_file,
    }
    async with front(etcd_endpoints, prefix, **options) as svc:
        credentials = channel_credentials(test_ca, test_ca.issue("wardle"))
        async with EtcdV3(svc.etcd_endpoint, credentials=credentials) as wardle:
            await wardle.put(flunder_key(prefix, "tls"), value("tls"))
            assert [kv.key for kv in (await wardle.range(flunder_key(prefix, "tls"))).kvs] == [
                flunder_key(prefix, "tls")
            ]
            with pytest.raises(RpcFailed) as denied:
                await wardle.put(f"{prefix}/acme.example.com/widgets/default/x".encode(), b"x")
            assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
        without = channel_credentials(test_ca, None)
        async with EtcdV3(svc.etcd_endpoint, credentials=without, timeout=3) as stranger:
            with pytest.raises(RpcFailed) as refused:
                await stranger.range(flunder_key(prefix, "tls"))
            assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert refused.value.message == "etcdserver: user name is empty"
            token = await stranger.authenticate("wardle", TOKENS["wardle"])
        async with EtcdV3(svc.etcd_endpoint, credentials=without, token=token) as by_token:
            found = await by_token.range(flunder_key(prefix, "tls"))
            assert [kv.key for kv in found.kvs] == [flunder_key(prefix, "tls")]


async def test_without_etcd_calls_answer_unavailable_and_nothing_hangs(
    own_etcd: EtcdServer, prefix: str
) -> None:
    """With etcd gone, the calls that need its revision answer etcd's UNAVAILABLE (clientv3 retries
    it), never INTERNAL and never silence: Auth.Authenticate, a watch of a cached prefix from the
    current revision (its stream fails, so clientv3 opens another), and a RequestProgress."""
    async with front(own_etcd.endpoints, prefix) as svc, tenant(svc, "wardle") as wardle:
        start = flunders_layout(prefix).resource_prefix
        async with wardle.watch_stream() as progress:
            await progress.create(start, prefix_end(start))
            assert (await progress.read()).created
            await own_etcd.member.stop()
            async with EtcdV3(svc.etcd_endpoint, timeout=5) as anonymous:
                with pytest.raises(RpcFailed) as refused:
                    await anonymous.authenticate("wardle", TOKENS["wardle"])
                assert refused.value.code == grpc.StatusCode.UNAVAILABLE, refused.value
            async with wardle.watch_stream() as stream:
                await stream.create(start, prefix_end(start))
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await stream.read(within=20)
                assert failed.value.code() == grpc.StatusCode.UNAVAILABLE, failed.value
            # A progress request that cannot be answered is let go: the stream goes on.
            await progress.request_progress()
            await own_etcd.member.start()
            await own_etcd.member.wait_ready(30)

            async def put_after() -> Any:
                # The service's own channel to etcd reconnects with a backoff: until it has, the put
                # is etcd's UNAVAILABLE, which clientv3 retries, and so does this test (nothing else).
                try:
                    return await wardle.put(flunder_key(prefix, "after"), value("after"))
                except RpcFailed as err:
                    if err.code != grpc.StatusCode.UNAVAILABLE:
                        raise AssertionError(f"not UNAVAILABLE: {err}") from err
                    raise

            await retry(put_after, within=30, interval=0.2, errors=(RpcFailed,))
            assert [e.kv.key for e in await progress.events(1)] == [flunder_key(prefix, "after")]


async def test_a_call_etcd_does_not_answer_in_time_is_etcds_request_timed_out(
    own_etcd: EtcdServer, prefix: str
) -> None:
    """The front's own deadline on a call it passes on (``request_timeout``) is not the client's: when
    it expires, the client gets what etcd answers a request it cannot serve in time, UNAVAILABLE
    "etcdserver: request timed out" (clientv3 retries it), not DEADLINE_EXCEEDED for a deadline it
    never set. (The soak's etcd writer got etcd's own side of it, UNKNOWN "context deadline exceeded",
    while quorum was lost.)"""
    key = flunder_key(prefix, "late")
    async with front(own_etcd.endpoints, prefix, request_timeout=1.0) as svc, tenant(svc, "wardle") as wardle:
        own_etcd.member.pause()
        try:
            put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value("late")))
            with pytest.raises(RpcFailed) as failed:
                await wardle.call("KV", "Txn", rpc_pb2.TxnRequest(success=[put]))
            assert (failed.value.code, failed.value.message) == (
                grpc.StatusCode.UNAVAILABLE,
                "etcdserver: request timed out",
            )
        finally:
            own_etcd.member.resume()
        done = await retry(
            lambda: wardle.call("KV", "Txn", rpc_pb2.TxnRequest(success=[put])), errors=(RpcFailed,)
        )
        assert done.succeeded


def test_etcds_own_deadline_answer_is_request_timed_out_too() -> None:
    """etcd answers a call whose deadline expired at its end UNKNOWN "context deadline exceeded" (Go's
    context error, unmapped); passed on, that is the same expiry of the front's deadline. Every other
    error of etcd is passed on as it is."""
    unknown = grpc.aio.AioRpcError(
        grpc.StatusCode.UNKNOWN, grpc.aio.Metadata(), grpc.aio.Metadata(), details="context deadline exceeded"
    )
    assert (passed_on(unknown).code, passed_on(unknown).message) == (
        grpc.StatusCode.UNAVAILABLE,
        "etcdserver: request timed out",
    )
    no_leader = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details="etcdserver: no leader"
    )
    assert (passed_on(no_leader).code, passed_on(no_leader).message) == (
        grpc.StatusCode.UNAVAILABLE,
        "etcdserver: no leader",
    )


async def test_watches_go_on_across_an_etcd_restart(own_etcd: EtcdServer, prefix: str) -> None:
    """etcd restarts under an open front watch: the cache resumes its one etcd watch from its last
    revision, and the client's watch — same id, no second ``created`` — gets every event once, in order."""
    async with front(own_etcd.endpoints, prefix) as svc, tenant(svc, "wardle") as wardle:
        host, port = host_port(own_etcd.endpoints[0])
        async with EtcdV3(f"{host}:{port}") as direct, wardle.watch_stream() as stream:
            start = flunders_layout(prefix).resource_prefix
            await stream.create(start, prefix_end(start), prev_kv=True)
            created = await stream.read()
            assert created.created
            before = [
                (await direct.put(flunder_key(prefix, f"a{i}"), value("a"))).header.revision for i in range(3)
            ]
            await own_etcd.member.restart()
            after = []
            for i in range(3):
                done = await retry(
                    lambda i=i: direct.put(flunder_key(prefix, f"b{i}"), value("b")), errors=(RpcFailed,)
                )
                after.append(done.header.revision)
            seen = []
            async with asyncio.timeout(30):
                while len(seen) < 6:
                    answer = await stream.read(within=30)
                    assert not answer.created and answer.watch_id == created.watch_id
                    seen.extend(e.kv.mod_revision for e in answer.events)
            assert seen == before + after
