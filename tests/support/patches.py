"""JSON patches an attacker would send."""

from __future__ import annotations

from typing import Any


def doubling_patch(rounds: int, *, seed: Any = None) -> list[dict[str, Any]]:
    """About 4 KB of JSON patch (RFC 6902) whose every round doubles ``/spec/a``: the amplification of
    the hardening issue (twenty rounds make a million copies of the seed). ``seed`` is the first value
    of ``/spec/a`` (default: a list of one 100-character string)."""
    first = ["x" * 100] if seed is None else seed
    ops: list[dict[str, Any]] = [{"op": "add", "path": "/spec/a", "value": first}]
    for _ in range(rounds):
        ops += [
            {"op": "copy", "from": "/spec/a", "path": "/spec/b"},
            {"op": "add", "path": "/spec/a/-", "value": 1},
            {"op": "copy", "from": "/spec/b", "path": "/spec/a/-"},
        ]
    return ops
