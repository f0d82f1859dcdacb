"""The etcd v3 front: the etcd gRPC API over the same caches, so that an aggregated API server built
on k8s.io/apiserver points ``--etcd-servers`` at watchcache and works unmodified, within its tenant's
keyspace.

Owns: ``server`` (EtcdFront: the services on the own HTTP/2 transport, TLS, tenants), ``front`` (what
the services share: the caches by key range, etcd, headers), ``session`` (tenants by certificate or
etcd token), ``keyspace`` (what a tenant may touch, its private keys, hidden keys), ``kv``, ``watch``
(a Watch stream) and ``watches`` (its cached and passed-through watches), ``lease``, ``maintenance``
(the services), ``events`` (watch responses encoded once and shared), ``errors`` (etcd's errors, word
for word). May import: ``watchcache.tenancy``, ``watchcache.api``, ``watchcache.cache`` (the etcd
protocol is key-value, as the cache is), ``watchcache.etcd``, ``watchcache.transport``,
``watchcache.keys``, ``watchcache.selectors``, ``watchcache.errors``.
"""
