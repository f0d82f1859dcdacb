"""GET and LIST over HTTP: an object's cached bytes, and lists written piece by piece.

A small list is one body. A large one is written from the cache's shared bytes in pieces of about
256 KiB (another version's copy is made piece by piece), each piece taken from the tenant's byte
budget before it is built, so no second copy of the answer ever exists.
"""

from __future__ import annotations

from aiohttp import web

from ..api.options import ListOptions
from ..api.pages import Piece
from .responses import Responder
from .routes import Target
from .wire import JSON, list_head

__all__ = ["PIECE", "Reads"]

PIECE = 256 * 1024
"""About how many bytes of a LIST (or of a watch's backlog) are built and written at a time."""


class Reads:
    """The GET and LIST handlers."""

    def __init__(self, out: Responder) -> None:
        self._out = out

    async def get(self, request: web.Request, target: Target) -> web.StreamResponse:
        assert target.name is not None
        raw = await target.resource.get_raw(
            target.name,
            namespace=target.namespace,
            resource_version=request.query.get("resourceVersion"),
            version=target.version,
        )
        return web.Response(body=raw, content_type=JSON)

    async def list(self, request: web.Request, target: Target) -> web.StreamResponse:
        options = ListOptions.from_query(request.query, namespace=target.namespace, version=target.version)
        page = await target.resource.list_page(options)
        spec = target.resource.spec
        head = list_head(
            spec.kind,
            spec.api_version(target.version),
            page.revision,
            page.continue_token,
            page.remaining_item_count,
        )
        pieces = page.pieces(PIECE)
        first = next(pieces, None)
        if first is None or len(first) == len(page.entries):
            # A small list: one body (written by the caller, under the write timeout and budget).
            body = head + (first.render() if first is not None else b"") + b"]}"
            return web.Response(body=body, content_type=JSON)
        out = self._out
        budget = target.admission.bytes if target.admission is not None else None
        response = web.StreamResponse(headers={"Content-Type": JSON})
        response.enable_chunked_encoding()
        await out.write_or_drop(request, response.prepare(request))
        piece: Piece | None = first
        separator = head
        while piece is not None:
            async with out.held(budget, piece.size):
                if not await out.write_or_drop(request, response.write(separator + piece.render())):
                    return response
            separator = b","
            piece = next(pieces, None)
        await out.write_or_drop(request, response.write_eof(b"]}"))
        return response
