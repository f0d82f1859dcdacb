"""The watch cache: one etcd watch per resource feeding an in-memory state, a window of recent
changes and any number of watchers, after kubernetes' ``k8s.io/apiserver/pkg/storage/cacher``.

Owns: ``cacher`` (Cache: the parts composed, their tasks), ``watch_cache`` (objects, window and
snapshots), ``store`` (entries holding etcd's bytes once, the sorted store), ``splice`` (where the
served JSON is spliced from those bytes), ``window`` (recent changes), ``cache_watcher`` (one watcher:
selection, bounded buffer, the slow-watcher cut), ``dispatcher`` (watcher index, coalescing,
bookmarks), ``ready`` (readiness, waiting for revisions, progress writes), ``reflector``
(list-then-watch from etcd), ``backoff`` (its retry delays), ``source`` (the KV-source Protocol it is
fed through), ``settings``. May import: ``watchcache.etcd`` (its types), ``watchcache.keys``,
``watchcache.selectors``, ``watchcache.errors``.
"""
