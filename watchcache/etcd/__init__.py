"""The etcd adapter: the only code that speaks gRPC to etcd, and the private etcd process.

It uses aetcd's generated stubs (``aetcd.rpc``) directly rather than aetcd's high-level client,
because the cache needs what that client hides: one gRPC channel to several endpoints, TLS, per-call
deadlines, watch progress notifications, and transactions that return the losing state. Every etcd
answer becomes one of the small frozen types of :mod:`.types`, and every gRPC failure a watchcache
error (:mod:`.errors`), so nothing above this package sees protobuf or grpc.

Owns: ``client`` (EtcdClient), ``watch`` (one watch stream), ``health`` (whether etcd serves us, and
the one log line per change of that), ``types``, ``errors`` (translation),
``member`` and ``process`` (the private etcd of ``--embedded-etcd``). May import: ``watchcache.errors``.
"""
