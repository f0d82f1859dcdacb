"""watchcache: a shared, tenant-safe etcd watch cache for Kubernetes aggregated API servers.

The public Python API. Everything else in the package is private.
"""

from .api.pages import ListResult
from .api.resource import Resource
from .api.spec import PrinterColumn, ResourceSpec
from .api.storage import Storage
from .api.watch import Watch, WatchEvent
from .cache.settings import CacheSettings
from .errors import (
    AlreadyExistsError,
    BadRequestError,
    ConfigError,
    ConflictError,
    EtcdUnavailableError,
    EtcdUnreachableError,
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
from .etcd.process import EmbeddedEtcd
from .etcd.types import EtcdTLS
from .service import Service, ServiceOptions
from .version import VERSION

__all__ = [
    "AlreadyExistsError",
    "BadRequestError",
    "CacheSettings",
    "ConfigError",
    "ConflictError",
    "EmbeddedEtcd",
    "EtcdTLS",
    "EtcdUnavailableError",
    "EtcdUnreachableError",
    "ExpiredError",
    "ForbiddenError",
    "InternalError",
    "InvalidError",
    "ListResult",
    "NotFoundError",
    "PrinterColumn",
    "RequestEntityTooLargeError",
    "Resource",
    "ResourceSpec",
    "Service",
    "ServiceOptions",
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

__version__ = VERSION
