"""A service whose flunders have printer columns of every kind (fischers keep the default ones), and
objects that exercise them: what the Table tests and kubectl's ``get`` tests serve."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from watchcache.config import parse_config
from watchcache.service import Service, ServiceOptions

CONFIG = r"""
resources:
  - group: wardle.example.com
    versions: [v1alpha1, v1beta1]
    resource: flunders
    kind: Flunder
    printerColumns:
      - {name: Size, type: integer, jsonPath: .spec.size}
      - {name: Weight, type: number, jsonPath: .spec.weight}
      - {name: Ready, type: boolean, jsonPath: .status.ready}
      - {name: First, type: string, jsonPath: ".spec.items[*].name"}
      - {name: Zeroth, type: string, jsonPath: ".spec.items[0]"}
      - {name: App, type: string, jsonPath: ".metadata.labels.app\\.kubernetes\\.io/name"}
      - {name: Color, type: string, jsonPath: .spec.color, priority: 1, description: "What it looks like"}
      - {name: Age, type: date, jsonPath: .metadata.creationTimestamp, format: date-time}
  - group: wardle.example.com
    versions: [v1alpha1]
    resource: fischers
    kind: Fischer
    namespaced: false
"""

HEADERS = ["NAME", "SIZE", "WEIGHT", "READY", "FIRST", "ZEROTH", "APP", "AGE"]
"""What kubectl prints above flunders (COLOR only with ``-o wide``)."""

FULL: dict[str, Any] = {
    "metadata": {"name": "full", "namespace": "default", "labels": {"app.kubernetes.io/name": "web"}},
    "spec": {
        "size": 2.7,
        "weight": 2,
        "items": [{"id": 1, "tag": "<b>"}, {"name": "second"}, {"name": "third"}],
        "color": "red",
    },
    "status": {"ready": True},
}
"""A flunder with a value for every column: its cells are :data:`FULL_CELLS` and an age."""

FULL_CELLS = ["full", 2, 2, True, "second", '{"id":1,"tag":"\\u003cb\\u003e"}', "web", "red"]
"""kube-apiserver's cells for :data:`FULL`: the integer truncated, a number from an integer, the first
match of ``[*]``, a map printed as Go's JSON, the escaped key's value."""

BARE: dict[str, Any] = {
    "metadata": {"name": "bare", "namespace": "default"},
    "spec": {"size": "three", "weight": "heavy", "items": []},
}
"""A flunder whose every column cell is null (values of other types, paths leading nowhere)."""


@asynccontextmanager
async def serve(endpoints: Sequence[str], prefix: str) -> AsyncIterator[Service]:
    """The service of :data:`CONFIG`, its caches loaded."""
    options = ServiceOptions(
        config=parse_config(CONFIG), etcd_servers=tuple(endpoints), etcd_prefix=prefix, port=0
    )
    async with Service(options) as svc:
        assert svc.storage is not None
        await svc.storage.wait_ready()
        yield svc
