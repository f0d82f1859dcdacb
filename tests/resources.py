"""The resources the tests serve: the wardle sample's, as in examples/watchcache.yaml."""

from __future__ import annotations

from watchcache import ResourceSpec

FLUNDERS = ResourceSpec(
    group="wardle.example.com",
    resource="flunders",
    kind="Flunder",
    namespaced=True,
    versions=("v1alpha1", "v1beta1"),
)
FISCHERS = ResourceSpec(
    group="wardle.example.com", resource="fischers", kind="Fischer", namespaced=False, versions=("v1alpha1",)
)
