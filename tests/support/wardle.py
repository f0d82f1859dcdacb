"""The wardle sample the tests serve (examples/watchcache.yaml): its resources, objects, paths and keys.

One spelling of each: an object is ``flunder(name, namespace)``, its REST path ``flunder_path``, its etcd
key ``flunder_key(prefix, name, namespace)`` (from the product's own :class:`KeyLayout`), its stored value
``flunder_value``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from watchcache import ResourceSpec
from watchcache.keys import KeyLayout

GROUP = "wardle.example.com"
V1A = f"{GROUP}/v1alpha1"

EXAMPLE_CONFIG = (Path(__file__).resolve().parents[2] / "examples" / "watchcache.yaml").read_text()
"""The README's example configuration: tenants wardle and acme, flunders, fischers and widgets."""

FLUNDERS = ResourceSpec(
    group=GROUP,
    resource="flunders",
    kind="Flunder",
    namespaced=True,
    versions=("v1alpha1", "v1beta1"),
)
FISCHERS = ResourceSpec(
    group=GROUP, resource="fischers", kind="Fischer", namespaced=False, versions=("v1alpha1",)
)


# -- objects ---------------------------------------------------------------------------------------------


def flunder(
    name: str,
    namespace: str = "default",
    *,
    labels: dict[str, str] | None = None,
    size: int | None = 1,
    api_version: str = V1A,
    **fields: Any,
) -> dict[str, Any]:
    """A Flunder (``spec.size`` unless ``size`` is None or a ``spec`` is given; other top-level
    ``fields`` as given)."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels is not None:
        meta["labels"] = labels
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": "Flunder", "metadata": meta}
    if size is not None:
        obj["spec"] = {"size": size}
    obj.update(fields)
    return obj


def flunder_value(name: str, namespace: str = "default", **fields: Any) -> bytes:
    """A Flunder as the value bytes an apiserver stores in etcd."""
    return orjson.dumps(flunder(name, namespace, **fields))


def fischer(name: str) -> dict[str, Any]:
    return {"apiVersion": V1A, "kind": "Fischer", "metadata": {"name": name}, "disallowedFlunders": ["a"]}


def rv(obj: dict[str, Any]) -> int:
    """An object's resourceVersion as a number."""
    return int(obj["metadata"]["resourceVersion"])


def names(items: dict[str, Any] | list[dict[str, Any]]) -> list[str]:
    """The names of a list's items (a List body, or its items)."""
    listed = items["items"] if isinstance(items, dict) else items
    return [item["metadata"]["name"] for item in listed]


# -- REST paths ------------------------------------------------------------------------------------------


def flunders_path(namespace: str | None = None, version: str = "v1alpha1") -> str:
    """The flunders collection (all namespaces when ``namespace`` is None)."""
    if namespace is None:
        return f"/apis/{GROUP}/{version}/flunders"
    return f"/apis/{GROUP}/{version}/namespaces/{namespace}/flunders"


def flunder_path(namespace: str, name: str, version: str = "v1alpha1") -> str:
    return f"{flunders_path(namespace, version)}/{name}"


FISCHERS_PATH = f"/apis/{GROUP}/v1alpha1/fischers"


# -- etcd keys -------------------------------------------------------------------------------------------


def flunders_layout(prefix: str) -> KeyLayout:
    return KeyLayout(prefix=prefix, group=GROUP, resource="flunders", namespaced=True)


def flunder_key(prefix: str, name: str, namespace: str = "default") -> bytes:
    """Where an apiserver with ``--etcd-prefix {prefix}/wardle.example.com`` keeps a flunder."""
    return flunders_layout(prefix).object_key(namespace, name)
