"""watchcache's own version (kept in step with pyproject.toml by a test)."""

__all__ = ["VERSION"]

VERSION = "0.1.0"
