"""Tests with real client programs (etcdctl, the Go etcd client).

A package, so that its conftest is ``clients.conftest`` and does not shadow ``tests/conftest.py``
(which other test modules import as ``conftest``).
"""
