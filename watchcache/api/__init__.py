"""Kubernetes API semantics over the watch cache and etcd: the embedded Python API.

Owns: ``resource`` (Resource, the facade), ``options`` (ListOptions/WatchOptions: every parameter
parsed and validated once), ``reads`` (GET, LIST), ``pages`` (pages, continue tokens), ``watch``
(WATCH and its typed events), ``writes`` (create, update, patch, delete, dry run, quotas),
``patch`` (bounded merge and JSON patches), ``meta`` (ObjectMeta's rules), ``table`` (objects as
Table cells and columns) and ``jsonpath`` (printer columns' paths), ``namespaces`` (the core namespaces
a caller may see, derived from the caches), ``spec`` (ResourceSpec, PrinterColumn), ``storage``
(Storage: one etcd client, one cache per resource). May import: ``watchcache.cache``,
``watchcache.etcd``, ``watchcache.keys``, ``watchcache.selectors``, ``watchcache.errors``.
"""
