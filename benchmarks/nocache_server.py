"""What a server without a watch cache does for a consistent LIST: one linearizable etcd range, decode
every value, set its resourceVersion, encode the whole Kubernetes List, answer. The comparison point of
benchmarks/list.py.

It is an aiohttp server, like ``watchcache serve``, with the same etcd client stack (grpc.aio and
aetcd's generated stubs) and the same JSON library (orjson), on the default asyncio loop like
``watchcache serve``; so the two differ only in where the objects come from. kube-apiserver without its
watch cache does the same (etcd3 store GetList: range, decode each value, set resourceVersion, encode).

    python benchmarks/nocache_server.py --etcd 127.0.0.1:2379 --port 8081
"""

from __future__ import annotations

import argparse
import asyncio

import grpc
import orjson
from aetcd import rpc
from aiohttp import web

_MAX = 256 * 1024 * 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--etcd", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--prefix", default="/registry")
    args = ap.parse_args()

    async def serve() -> None:
        channel = grpc.aio.insecure_channel(
            args.etcd,
            options=[("grpc.max_receive_message_length", _MAX), ("grpc.max_send_message_length", _MAX)],
        )
        kv = rpc.KVStub(channel)

        async def list_objects(request: web.Request) -> web.Response:
            group, version, ns, resource = (
                request.match_info[k] for k in ("group", "version", "ns", "resource")
            )
            prefix = f"{args.prefix}/{group}/{resource}/{ns}/".encode()
            end = prefix[:-1] + b"0"
            resp = await kv.Range(rpc.RangeRequest(key=prefix, range_end=end))  # linearizable
            items = []
            for item in resp.kvs:
                obj = orjson.loads(item.value)
                obj["metadata"]["resourceVersion"] = str(item.mod_revision)
                items.append(obj)
            body = orjson.dumps(
                {
                    "kind": "FlunderList",
                    "apiVersion": f"{group}/{version}",
                    "metadata": {"resourceVersion": str(resp.header.revision)},
                    "items": items,
                }
            )
            return web.Response(body=body, content_type="application/json")

        async def healthz(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/apis/{group}/{version}/namespaces/{ns}/{resource}", list_objects)
        app.router.add_get("/readyz", healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", args.port).start()
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
