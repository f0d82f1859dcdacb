"""etcd out of reach, as a user of the service sees it: the answer says so, and the log says it once.

A cache that cannot load because etcd cannot be reached answers 503 ServiceUnavailable ``etcd is
unreachable (<cause>)`` (not 429 "still loading"), as does a consistent read or a write while etcd is
judged down; resourceVersion=0 reads are still served from a loaded cache. The service logs one warning
when etcd becomes unreachable and one when it is back, however many caches retry how often meanwhile
(each retrying with a capped exponential backoff, at debug level).

Each test runs its own etcd (``own_etcd``) and stops or pauses (SIGSTOP) it. Log records are counted
with ``caplog``; the per-request lines of the HTTP front (records carrying ``code``) are a request log,
not the outage's, and are left out of the counts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from support.etcd import EtcdServer
from support.waiting import wait_until

from watchcache.cache.settings import CacheSettings
from watchcache.config import parse_config
from watchcache.service import Service, ServiceOptions

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

EXAMPLE_CONFIG = (Path(__file__).parents[2] / "examples" / "watchcache.yaml").read_text()
FLUNDERS = "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders"
FISCHERS = "/apis/wardle.example.com/v1alpha1/fischers"
BACKOFF_CAP = 0.4
"""The caches' retry_backoff_max here: short, so that many retries fit in a few seconds."""
UNREACHABLE = re.compile(r"^etcd is unreachable \(.+\)$")


def options(etcd: EtcdServer) -> ServiceOptions:
    return ServiceOptions(
        config=parse_config(EXAMPLE_CONFIG),
        etcd_servers=tuple(etcd.endpoints),
        port=0,
        request_timeout=1.0,
        cache=CacheSettings(retry_backoff_max=BACKOFF_CAP),
    )


@asynccontextmanager
async def serving(etcd: EtcdServer) -> AsyncIterator[tuple[Service, aiohttp.ClientSession]]:
    async with Service(options(etcd)) as service, aiohttp.ClientSession() as session:
        yield service, session


async def call(
    session: aiohttp.ClientSession, service: Service, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, str], Any]:
    async with session.request(
        method,
        service.url + path,
        data=None if body is None else orjson.dumps(body),
        headers={"Content-Type": "application/json"},
    ) as reply:
        raw = await reply.read()
        return reply.status, dict(reply.headers), orjson.loads(raw) if raw.startswith(b"{") else raw


def assert_unreachable(status: int, headers: dict[str, str], body: Any) -> str:
    """A 503 ServiceUnavailable Status saying etcd is unreachable and why, with Retry-After; its message."""
    assert status == 503, (status, body)
    assert headers["Retry-After"] == "1"
    assert (body["kind"], body["status"], body["reason"], body["code"]) == (
        "Status",
        "Failure",
        "ServiceUnavailable",
        503,
    ), body
    assert UNREACHABLE.match(body["message"]), body["message"]
    message: str = body["message"]
    return message


def outage_log(caplog: pytest.LogCaptureFixture, since: int = 0) -> list[logging.LogRecord]:
    """The service's own records from ``since`` on: not the test's etcd, not the request log."""
    return [
        r
        for r in caplog.records[since:]
        if r.name.startswith("watchcache.")
        and not r.name.startswith(("watchcache.etcd.process", "watchcache.etcd.member"))
        and not hasattr(r, "code")
    ]


def warnings(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.levelno >= logging.WARNING]


def retries(records: list[logging.LogRecord], cache: str) -> list[logging.LogRecord]:
    """The feed's retry records of one cache (logged at debug after the first)."""
    return [
        r
        for r in records
        if r.name == "watchcache.cache.reflector"
        and r.getMessage().startswith(f"{cache}: ")
        and " failed (" in r.getMessage()
    ]


async def kubectl(service: Service, home: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        f"--server={service.url}",
        f"--cache-dir={home / 'cache'}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "HOME": str(home), "KUBECONFIG": str(home / "none")},
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


def python_client_error(url: str) -> ApiException:
    """The official Python client's error for a LIST of fischers (blocking: run it in a thread)."""
    with client.ApiClient(client.Configuration(host=url)) as api_client:
        api = client.CustomObjectsApi(api_client)
        try:
            api.list_cluster_custom_object("wardle.example.com", "v1alpha1", "fischers")
        except ApiException as err:
            return err
    raise AssertionError("the LIST succeeded")


async def test_etcd_down_from_the_start(
    own_etcd: EtcdServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """etcd stopped before the service starts: once a cache's first list has failed, every verb on
    its resource is 503 ``etcd is unreachable (range: …)`` with Retry-After — through HTTP, kubectl
    and the Python client — and /readyz is 503 (/healthz and /livez 200). Over seconds of outage,
    with each cache retrying many times, backing off to the cap, the log has one warning; when etcd
    is back the caches load, requests succeed, and there is one more warning, saying so."""
    caplog.set_level(logging.DEBUG, logger="watchcache")
    member = own_etcd.member
    await member.stop()
    async with serving(own_etcd) as (service, session):
        assert service.storage is not None
        started = len(caplog.records)
        caches = {r.cache.name: r.cache for r in service.storage.resources}
        await wait_until(
            lambda: all(c.readiness.etcd_failure is not None for c in caches.values()),
            message="every cache's first list failed",
        )
        for method, path, body in [
            ("GET", FLUNDERS, None),
            ("GET", FLUNDERS + "?watch=true", None),
            ("GET", FLUNDERS + "/f", None),
            ("GET", FISCHERS + "?resourceVersion=0", None),
            ("POST", FLUNDERS, {"metadata": {"name": "f"}}),
        ]:
            message = assert_unreachable(*await call(session, service, method, path, body))
            assert message.startswith("etcd is unreachable (range: "), message
        status, _, text = await call(session, service, "GET", "/readyz?verbose")
        assert status == 503 and b"[-]caches-synced" in text
        for alive in ("/healthz", "/livez"):
            assert (await call(session, service, "GET", alive))[0] == 200

        if shutil.which("kubectl"):  # kubectl retries a 503 with Retry-After ten times, then says why
            code, printed = await kubectl(service, tmp_path, "get", "flunders", "-n", "default")
            assert code == 1
            said = r"^Error from server \(ServiceUnavailable\): etcd is unreachable \(range: "
            assert re.search(said, printed, re.MULTILINE), printed
        error = await asyncio.to_thread(python_client_error, service.url)
        assert error.status == 503 and error.reason == "Service Unavailable"
        assert UNREACHABLE.match(orjson.loads(error.body)["message"])

        # A few seconds of outage: the probe has judged etcd down, each cache has retried ten
        # times or more (at debug level), and the gaps between retries have grown to the cap.
        await wait_until(
            lambda: all(len(retries(outage_log(caplog, started), name)) >= 10 for name in caches),
            within=30,
            message="ten retries of every cache",
        )
        await wait_until(lambda: not service.storage.etcd.healthy, message="the probe judged etcd down")
        during = outage_log(caplog, started)
        assert len(warnings(during)) == 1, warnings(during)
        said = r"^etcd is unreachable \(a read: .+\): failing consistent reads and writes fast"
        assert re.match(said, warnings(during)[0]), warnings(during)
        for name in caches:
            attempts = retries(during, name)
            assert [r.levelname for r in attempts[:2]] == ["INFO", "DEBUG"], name
            assert {r.levelname for r in attempts[1:]} == {"DEBUG"}, name
            # Backed off: by the 6th attempt the step is the cap, and a delay is never under half
            # a step, so the 6th to 10th attempts are at least 4 times cap/2 apart.
            assert attempts[9].created - attempts[5].created >= 4 * BACKOFF_CAP / 2 * 0.9, name

        back = len(caplog.records)
        await member.start()
        await member.wait_ready()
        await service.storage.wait_ready(20)
        for path in (FLUNDERS, FISCHERS):
            status, _, listed = await call(session, service, "GET", path)
            assert status == 200 and listed["items"] == [], listed
        await wait_until(lambda: service.storage.etcd.healthy, message="etcd judged healthy")
        after = outage_log(caplog, back)
        assert len(warnings(after)) == 1, warnings(after)
        assert re.match(r"^etcd is reachable again after \d+\.\d s$", warnings(after)[0])
        assert warnings(outage_log(caplog, started)) == warnings(during) + warnings(after)


async def test_etcd_paused_under_loaded_caches(
    own_etcd: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    """etcd frozen (SIGSTOP) under loaded caches: resourceVersion=0 reads are still served from the
    caches; once the probe has judged etcd down, a consistent read and a write are 503 ``etcd is
    unreachable (no answer from etcd to … within 1 s)``. Over several failed probes there is one
    warning; after SIGCONT, consistent reads succeed again and one more warning says etcd is back."""
    caplog.set_level(logging.DEBUG, logger="watchcache")
    member = own_etcd.member
    async with serving(own_etcd) as (service, session):
        assert service.storage is not None
        await service.storage.wait_ready(20)
        status, _, created = await call(session, service, "POST", FLUNDERS, {"metadata": {"name": "kept"}})
        assert status == 201, created
        # A create is acknowledged once etcd has it; the cache has it when its watch delivers it.
        flunders = service.storage.resources[0]
        kept_at = int(created["metadata"]["resourceVersion"])
        await wait_until(lambda: flunders.cache.revision >= kept_at, message="the cache has the create")
        started = len(caplog.records)

        member.pause()
        try:
            status, _, cached = await call(session, service, "GET", FLUNDERS + "?resourceVersion=0")
            assert status == 200 and [i["metadata"]["name"] for i in cached["items"]] == ["kept"]
            await wait_until(lambda: not service.storage.etcd.healthy, message="the probe judged etcd down")
            message = assert_unreachable(*await call(session, service, "GET", FLUNDERS))
            assert message == "etcd is unreachable (no answer from etcd to range within 1 s)"
            message = assert_unreachable(
                *await call(session, service, "POST", FLUNDERS, {"metadata": {"name": "new"}})
            )
            assert message == "etcd is unreachable (no answer from etcd to create within 1 s)"
            status, _, text = await call(session, service, "GET", "/readyz?verbose")
            assert status == 503 and b"[-]etcd" in text

            def probes_failed() -> int:
                return sum(
                    1 for r in outage_log(caplog, started) if r.getMessage().startswith("etcd probe failed")
                )

            await wait_until(lambda: probes_failed() >= 5, within=30, message="five failed probes")
            during = warnings(outage_log(caplog, started))
            assert len(during) == 1, during
            assert during[0].startswith("etcd is unreachable (no answer from etcd to a read within 1 s)")
        finally:
            member.resume()

        back = len(caplog.records)
        await wait_until(lambda: service.storage.etcd.healthy, within=20, message="etcd judged healthy")
        status, _, listed = await call(session, service, "GET", FLUNDERS)
        assert status == 200, listed
        # The write that got no answer may still have been applied once etcd woke up: etcd read the
        # request off its socket after SIGCONT. Either way the list is etcd's state.
        assert [i["metadata"]["name"] for i in listed["items"]] in (["kept"], ["kept", "new"]), listed
        after = warnings(outage_log(caplog, back))
        assert len(after) == 1 and after[0].startswith("etcd is reachable again after"), after
