"""The HTTP/2 transport's stream, through a real socket: a handler that reads its request while it
writes its answer (a gRPC bidirectional call, as the etcd front's Watch is) is woken for each."""

from __future__ import annotations

import asyncio

from support.h2client import H2Client, Response

from watchcache.transport.http2 import Connection, Stream

ANSWER = 200_000  # more than a stream's initial window (65,535 bytes)


async def test_a_reader_and_a_writer_of_one_stream_each_wake() -> None:
    """One task of the handler waits for more of the request body while another waits for the
    client's window, as the etcd front's Watch does when a client stops reading: the body's arrival
    wakes the reader (not only the writer), and the window opening then wakes the writer."""
    loop = asyncio.get_running_loop()
    body: asyncio.Future[bytes | None] = loop.create_future()
    drained: asyncio.Future[None] = loop.create_future()

    async def handler(stream: Stream) -> None:
        stream.send_headers([(b":status", b"200"), (b"content-type", b"application/grpc")])

        async def read() -> None:
            body.set_result(await stream.read())

        reader = asyncio.create_task(read(), name="test-stream-reader")
        await asyncio.sleep(0)  # the reader runs up to its wait for the body first
        stream.send(b"x" * ANSWER)
        await stream.drain(0)  # the client's window lets 65,535 bytes out: the rest waits
        drained.set_result(None)
        await reader
        stream.end([(b"grpc-status", b"0")])

    server = await loop.create_server(lambda: Connection(handler), "127.0.0.1", 0)
    client = await H2Client.connect("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        sid = client.h2.get_next_available_stream_id()
        client.responses[sid] = Response()
        client.stalled.add(sid)  # its DATA is not acknowledged: the server's window stays shut
        fields = [(":method", "POST"), (":path", "/t"), (":scheme", "http"), (":authority", "localhost")]
        client.h2.send_headers(sid, fields, end_stream=False)
        client.flush()
        await client.until(sid, lambda r: len(r.body) >= 65_535)
        assert not drained.done()

        client.h2.send_data(sid, b"more of the request")
        client.flush()
        async with asyncio.timeout(10):
            assert await body == b"more of the request"
        assert not drained.done()  # the window is still shut

        client.h2.increment_flow_control_window(ANSWER, stream_id=sid)
        client.h2.end_stream(sid)
        client.flush()
        async with asyncio.timeout(10):
            await drained
        response = await client.response(sid)
        assert response.end_stream and len(response.body) == ANSWER
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
