"""A kopf operator for the tests: one handler on flunders, run by ``kopf run`` against the service.

The service's URL comes from ``WATCHCACHE_URL`` (authentication is off there, so any token does).
Each handled creation prints one line, ``HANDLED create NAMESPACE/NAME size=N``, which the test waits
for; the handler's result lands in the object's status, as kopf stores it.
"""

from __future__ import annotations

import os
from typing import Any

import kopf


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    return kopf.ConnectionInfo(server=os.environ["WATCHCACHE_URL"], scheme="Bearer", token="unused")


@kopf.on.create("wardle.example.com", "v1alpha1", "flunders")
def created(name: str, namespace: str, spec: dict[str, Any], **_: Any) -> dict[str, bool]:
    print(f"HANDLED create {namespace}/{name} size={spec.get('size')}", flush=True)
    return {"seen": True}
