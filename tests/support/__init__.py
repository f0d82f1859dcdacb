"""Helpers shared by the test suite (and the soak): etcd processes, clients, HTTP calls."""
