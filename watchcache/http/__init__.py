"""The REST front: Kubernetes paths, discovery and OpenAPI over the embedded API, with aiohttp.

Owns: ``server`` (APIServer: listener, request path, errors as Status), ``routes`` (path → resource,
verb), ``read``/``watch``/``write`` (the handlers), ``namespaces`` (the core group's read-only
namespaces), ``tables`` (Table answers for ``kubectl get``), ``wire`` (all JSON line and chunk
framing), ``responses`` (write timeout, byte budgets, request metrics), ``connections`` (timeouts and
caps), ``documents``/``discovery``/``openapi`` (what kubectl reads; ``openapi_proto`` and ``gnostic``:
the v2 document as protobuf), ``metrics``, ``settings``. May import: ``watchcache.tenancy``,
``watchcache.api``, ``watchcache.keys``, ``watchcache.selectors``, ``watchcache.errors``.
"""
