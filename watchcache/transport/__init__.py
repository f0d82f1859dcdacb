"""HTTP/2 and gRPC on asyncio, for the fronts: ``http2`` (connections, streams, a fast path for DATA
frames) and ``grpc`` (calls, framing, a servicer context). May import: nothing of watchcache's.
"""
