"""Real etcd processes (watchcache.etcd and the suite's tools on top): start, stop, restart, crash,
pause, clusters."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import aetcd
import pytest
from support.etcd import EtcdCluster, EtcdServer, etcd_client
from support.waiting import retry, wait_until

from watchcache.etcd import process
from watchcache.etcd.member import EtcdNotFoundError, EtcdStartError, etcd_binary


async def test_single_member_serves_then_stops_and_removes_its_dir() -> None:
    """A single member answers a put/get through aetcd; stop() kills it and removes its temp dir."""
    server = EtcdServer()
    await server.start()
    try:
        root, member = server.root, server.member
        assert root is not None and root.is_dir()
        assert member.running and server.endpoints == [member.client_url]
        async with etcd_client(server.endpoints[0]) as kv:
            await kv.put(b"/k", b"v")
            got = await kv.get(b"/k")
            assert got is not None and got.value == b"v"
    finally:
        await server.stop()
    assert not member.running
    assert not root.exists()
    await server.stop()  # idempotent
    with pytest.raises(RuntimeError):
        _ = server.endpoints


async def test_session_fixtures_give_a_private_prefix(etcd_kv: aetcd.Client, prefix: str) -> None:
    """The session etcd is reachable through etcd_kv, and prefix is fresh (nothing under it)."""
    assert prefix.startswith("/registry-t")
    assert list(await etcd_kv.get_prefix(prefix.encode())) == []
    await etcd_kv.put(f"{prefix}/a".encode(), b"1")
    assert [kv.value for kv in await etcd_kv.get_prefix(prefix.encode())] == [b"1"]


async def test_restart_keeps_data(own_etcd: EtcdServer) -> None:
    """A graceful restart brings the member back on the same endpoint with its data."""
    endpoint = own_etcd.endpoints[0]
    async with etcd_client(endpoint) as kv:
        await kv.put(b"/kept", b"yes")
    await own_etcd.member.restart()
    assert own_etcd.endpoints == [endpoint]
    async with etcd_client(endpoint) as kv:
        got = await retry(lambda: kv.get(b"/kept"))
        assert got is not None and got.value == b"yes"


async def test_kill_then_restart(own_etcd: EtcdServer) -> None:
    """kill() is a crash (process gone at once, data dir kept); restart() recovers the data."""
    member = own_etcd.member
    async with etcd_client(member.client_url) as kv:
        await kv.put(b"/crash", b"survives")
    member.kill()
    assert not member.running and member.pid is None
    assert member.data_dir.is_dir()
    assert not await member.healthy()
    await member.restart()
    async with etcd_client(member.client_url) as kv:
        got = await retry(lambda: kv.get(b"/crash"))
        assert got is not None and got.value == b"survives"


async def test_pause_and_resume(own_etcd: EtcdServer) -> None:
    """A paused member answers nothing but is still running; after resume() it is healthy again."""
    member = own_etcd.member
    member.pause()
    try:
        assert member.running and member.paused
        assert not await member.healthy(timeout=0.3)
    finally:
        member.resume()
    assert not member.paused
    await wait_until(member.healthy, within=10, message="resumed member healthy")


async def test_cluster_survives_losing_its_leader(etcd_cluster: EtcdCluster) -> None:
    """A 3-member cluster elects a leader, takes writes once the leader is killed, stops fully."""
    assert len(etcd_cluster.members) == 3
    assert len(set(etcd_cluster.endpoints)) == 3
    old_leader = await etcd_cluster.leader()
    old_leader.kill()
    survivor = next(m for m in etcd_cluster.members if m is not old_leader)
    async with etcd_client(survivor.client_url, timeout=1.0) as kv:
        await retry(lambda: kv.put(b"/after-failover", b"ok"), within=15)
        got = await kv.get(b"/after-failover")
        assert got is not None and got.value == b"ok"
    new_leader = await etcd_cluster.leader()
    assert new_leader is not old_leader
    await etcd_cluster.wait_healthy(10)
    members = etcd_cluster.members
    await etcd_cluster.stop()
    assert not any(m.running for m in members)
    assert etcd_cluster.members == []


async def test_start_failure_reports_etcd_log(tmp_path: Path) -> None:
    """An etcd that cannot start raises EtcdStartError carrying its log; nothing is left behind."""
    server = EtcdServer(base_dir=tmp_path, extra_args=["--no-such-flag"])
    with pytest.raises(EtcdStartError, match="no-such-flag") as raised:
        await server.start()
    assert raised.value.exit_code not in (None, 0)
    assert not server.started
    assert os.listdir(tmp_path) == []


def test_missing_binary_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without etcd on PATH the error is a FileNotFoundError naming the Debian package."""
    monkeypatch.setenv("PATH", os.devnull)
    with pytest.raises(FileNotFoundError, match="etcd-server") as raised:
        etcd_binary()
    assert isinstance(raised.value, EtcdNotFoundError)


async def test_port_clash_is_retried_on_fresh_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    """When a chosen port is taken before etcd binds it, start() retries on other ports."""
    real_free_ports = process._free_ports
    calls: list[list[int]] = []

    def clashing_free_ports(count: int) -> list[int]:
        ports = real_free_ports(count)
        if not calls:
            ports[0] = busy_port
        calls.append(ports)
        return ports

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        busy_port = busy.getsockname()[1]
        monkeypatch.setattr(process, "_free_ports", clashing_free_ports)
        async with EtcdServer() as server:
            assert len(calls) == 2
            assert server.member.client_port != busy_port
            assert await server.member.healthy()
