"""watchcache: a shared, tenant-safe etcd watch cache for Kubernetes aggregated API servers.

The public Python API. Everything else in the package is private.
"""

from ._cacher import CacheSettings
from ._embedded import EmbeddedEtcd
from ._errors import (
    AlreadyExistsError,
    BadRequestError,
    ConflictError,
    EtcdUnavailableError,
    ExpiredError,
    ForbiddenError,
    InternalError,
    InvalidError,
    NotFoundError,
    RequestEntityTooLargeError,
    Status,
    StatusError,
    TimedOutError,
    TooManyRequestsError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)
from ._etcd import EtcdTLS
from ._resource import ListResult, Resource, ResourceSpec, Watch, WatchEvent
from ._storage import Storage

__all__ = [
    "AlreadyExistsError",
    "BadRequestError",
    "CacheSettings",
    "ConflictError",
    "EmbeddedEtcd",
    "EtcdTLS",
    "EtcdUnavailableError",
    "ExpiredError",
    "ForbiddenError",
    "InternalError",
    "InvalidError",
    "ListResult",
    "NotFoundError",
    "RequestEntityTooLargeError",
    "Resource",
    "ResourceSpec",
    "Status",
    "StatusError",
    "Storage",
    "TimedOutError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
    "Watch",
    "WatchEvent",
]

__version__ = "0.1.0"
