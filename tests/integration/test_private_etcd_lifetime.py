"""The private etcd of ``watchcache serve --embedded-etcd`` lives and dies with it, whatever ends it.

Each test runs the installed ``watchcache`` command as ``./scripts/serve`` does, in its own session as
a terminal would run it, and ends it the way a user does: Ctrl-C (SIGINT), ``kill`` (SIGTERM), closing
the terminal (SIGHUP, sent to the process group, and for real by hanging up a pseudo-terminal), or
``kill -9``. Afterwards no process of that etcd (etcd itself, its janitor) runs and its temp dir is gone.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest
from support.serve import (
    EXAMPLE_CONFIG_FILE,
    WATCHCACHE,
    Banner,
    live_processes_mentioning,
    read_banner,
    start_serve,
    wait_ready,
)
from support.waiting import wait_until

from watchcache.etcd.lifeline import has_exited

WATCH = "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders?watch=true"


def etcd_port(banner: Banner) -> int:
    found = re.search(r"private etcd at http://127\.0\.0\.1:(\d+),", banner.text)
    assert found is not None, banner.text
    return int(found[1])


def its_processes(root: Path) -> dict[int, str]:
    """The running processes of the private etcd whose temp dir is ``root``: etcd (``--data-dir``
    under it) and its janitor (``root`` as argument)."""
    return live_processes_mentioning(str(root))


def check_running(root: Path) -> set[int]:
    """Before the signal: etcd and its janitor run, and the dir holds etcd's data. Returns their pids."""
    processes = its_processes(root)
    assert any(f"--data-dir={root}/etcd.etcd" in cmd for cmd in processes.values()), processes
    assert any(f"janitor {root}" in cmd for cmd in processes.values()), processes
    assert (root / "etcd.etcd").is_dir()
    return set(processes)


def check_nothing_left(root: Path, port: int, pids: set[int]) -> None:
    """Nothing of the private etcd is left: its dir, its processes (those seen running, by pid: one
    being killed drops its command line, and shows as a zombie, before its sockets close), and so
    its client port."""
    assert not root.exists(), sorted(str(p) for p in root.rglob("*"))
    assert its_processes(root) == {}
    assert [pid for pid in pids if not has_exited(pid)] == []
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


async def stop_leftovers(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"]
)
async def test_a_stop_signal_drains_then_removes_etcd_and_its_data(
    sig: signal.Signals, tmp_path: Path
) -> None:
    """SIGTERM, SIGINT (Ctrl-C) and SIGHUP (the terminal closed) each drain: an open watch ends cleanly,
    the exit code is 0, and by then etcd, its janitor and its temp dir are gone."""
    proc = await start_serve("--embedded-etcd", "--port", "0", log=tmp_path / "stderr")
    try:
        banner = await read_banner(proc)
        assert banner.etcd_dir is not None
        await wait_ready(banner.url)
        pids = check_running(banner.etcd_dir)
        async with aiohttp.ClientSession() as session, session.get(banner.url + WATCH) as watch:
            assert watch.status == 200
            os.killpg(proc.pid, sig)
            async with asyncio.timeout(30):
                assert await watch.content.read() == b""  # the chunked stream ended properly
        async with asyncio.timeout(30):
            assert await proc.wait() == 0, (tmp_path / "stderr").read_text()
    finally:
        await stop_leftovers(proc)
    # watchcache removed everything itself before exiting: nothing to wait for.
    check_nothing_left(banner.etcd_dir, etcd_port(banner), pids)


async def test_sigkill_leaves_no_etcd_and_no_files(tmp_path: Path) -> None:
    """``kill -9`` gives watchcache no chance to clean up: etcd dies with it (its parent-death signal)
    and the janitor, seeing its lifeline cut, removes the temp dir."""
    proc = await start_serve("--embedded-etcd", "--port", "0", log=tmp_path / "stderr")
    try:
        banner = await read_banner(proc)
        assert banner.etcd_dir is not None
        await wait_ready(banner.url)
        pids = check_running(banner.etcd_dir)
        os.killpg(proc.pid, signal.SIGKILL)
        async with asyncio.timeout(30):
            assert await proc.wait() == -signal.SIGKILL
    finally:
        await stop_leftovers(proc)
    root = banner.etcd_dir
    await wait_until(
        lambda: not root.exists() and not its_processes(root) and all(map(has_exited, pids)),
        within=30,
        message="etcd, its janitor and its temp dir gone after SIGKILL",
    )
    check_nothing_left(root, etcd_port(banner), pids)


async def test_closing_the_terminal_stops_etcd_and_removes_its_data(tmp_path: Path) -> None:
    """The issue's walk, literally: watchcache on a (pseudo-)terminal as its controlling terminal; the
    terminal goes away (its master side closed, as a terminal window closing does), the kernel hangs up
    watchcache with SIGHUP, and it drains and exits 0 with nothing left behind — though its log now
    writes to a dead terminal."""
    setsid = shutil.which("setsid")
    assert setsid is not None, "util-linux's setsid is needed to give watchcache a controlling terminal"
    master, slave = os.openpty()
    loop = asyncio.get_running_loop()
    log = bytearray()

    def drain() -> None:
        try:
            log.extend(os.read(master, 65536))
        except OSError:  # EIO once the other side is gone
            loop.remove_reader(master)

    try:
        # setsid(1) makes watchcache a session leader (same pid) whose controlling terminal is its stdin.
        proc = await asyncio.create_subprocess_exec(
            setsid,
            "--ctty",
            WATCHCACHE,
            "serve",
            "--config",
            EXAMPLE_CONFIG_FILE,
            "--embedded-etcd",
            "--port",
            "0",
            stdin=slave,
            stdout=asyncio.subprocess.PIPE,
            stderr=slave,
        )
        os.close(slave)
        slave = -1
        loop.add_reader(master, drain)
        try:
            banner = await read_banner(proc)
            assert banner.etcd_dir is not None
            await wait_ready(banner.url)
            pids = check_running(banner.etcd_dir)
            loop.remove_reader(master)
            os.close(master)  # the terminal closes
            master = -1
            async with asyncio.timeout(30):
                assert await proc.wait() == 0, log.decode(errors="replace")
        finally:
            await stop_leftovers(proc)
    finally:
        for fd in (master, slave):
            if fd >= 0:
                loop.remove_reader(fd)
                os.close(fd)
    check_nothing_left(banner.etcd_dir, etcd_port(banner), pids)


OWNER = """
import asyncio, sys, threading
from pathlib import Path
from watchcache.etcd.member import EtcdMember
from watchcache.etcd.process import free_port

async def start(member):
    await member.start()
    await member.wait_ready()

peer = free_port()
member = EtcdMember(
    name="solo", data_dir=Path(sys.argv[1]), client_port=free_port(), peer_port=peer,
    initial_cluster=f"solo=http://127.0.0.1:{peer}",
)
# Started from the event loop of a thread that then ends: etcd must outlive that thread.
thread = threading.Thread(target=asyncio.run, args=(start(member),))
thread.start()
thread.join()
asyncio.run(member.wait_ready())
print(member.pid, flush=True)
sys.stdin.read()
"""


async def test_an_etcd_member_dies_with_its_owner_even_without_a_janitor(tmp_path: Path) -> None:
    """The parent-death signal alone: a lone member (no group, so no janitor) started by an event loop
    in a thread that has since ended is still serving, and it dies when its owner is SIGKILLed."""
    data_dir = tmp_path / "solo.etcd"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        OWNER,
        str(data_dir),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            line = await proc.stdout.readline()
        assert line.strip().isdigit(), line
        etcd_pid = int(line)
        assert etcd_pid in live_processes_mentioning(f"--data-dir={data_dir}")
        proc.kill()
        assert await proc.wait() == -signal.SIGKILL
    finally:
        await stop_leftovers(proc)
    try:
        await wait_until(
            lambda: not live_processes_mentioning(f"--data-dir={data_dir}"),
            within=30,
            message="etcd gone with its owner",
        )
    finally:  # an orphan, if the test failed
        for pid in live_processes_mentioning(f"--data-dir={data_dir}"):
            os.kill(pid, signal.SIGKILL)
