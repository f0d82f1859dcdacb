"""Every error watchcache raises, and their one mapping to a Kubernetes ``Status``.

Each error class carries its HTTP code and Kubernetes reason, so the HTTP layer (and embedded users)
never translate by hand: ``err.status()`` is the wire form. Errors from aetcd/grpc are translated at the
etcd adapter boundary with ``raise ... from``; recovery data (a compacted revision, a retry delay) stays
on the exception.
"""

from __future__ import annotations

from typing import ClassVar, NotRequired, TypedDict

__all__ = [
    "AlreadyExistsError",
    "ConfigError",
    "BadRequestError",
    "ConflictError",
    "EtcdUnavailableError",
    "EtcdUnreachableError",
    "ExpiredError",
    "ForbiddenError",
    "InternalError",
    "InvalidError",
    "MethodNotAllowedError",
    "NotAcceptableError",
    "NotFoundError",
    "RequestEntityTooLargeError",
    "Status",
    "StatusCause",
    "StatusDetails",
    "StatusError",
    "TimedOutError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
]


class StatusCause(TypedDict, total=False):
    reason: str
    message: str
    field: str


class StatusDetails(TypedDict, total=False):
    name: str
    group: str
    kind: str
    retryAfterSeconds: int
    causes: list[StatusCause]


class Status(TypedDict):
    """A Kubernetes ``v1.Status`` as it goes on the wire."""

    kind: str
    apiVersion: str
    metadata: dict[str, str]
    status: str
    message: str
    reason: str
    code: int
    details: NotRequired[StatusDetails]


class StatusError(Exception):
    """Base of every error that has a Kubernetes ``Status`` form."""

    code: ClassVar[int] = 500
    reason: ClassVar[str] = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        details: StatusDetails | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        #: Seconds a client should wait before retrying (``Retry-After``), when the error says so.
        self.retry_after = retry_after

    def status(self) -> Status:
        """The ``Status`` object for this error: the single place errors become wire format."""
        status: Status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        details: StatusDetails = dict(self.details) if self.details else {}  # type: ignore[assignment]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        if details:
            status["details"] = details
        return status


class BadRequestError(StatusError):
    code = 400
    reason = "BadRequest"


class UnauthorizedError(StatusError):
    code = 401
    reason = "Unauthorized"


class ForbiddenError(StatusError):
    code = 403
    reason = "Forbidden"


class NotFoundError(StatusError):
    code = 404
    reason = "NotFound"

    @classmethod
    def for_object(cls, qualified_resource: str, name: str) -> NotFoundError:
        return cls(
            f'{qualified_resource} "{name}" not found',
            details=_object_details(qualified_resource, name),
        )


class MethodNotAllowedError(StatusError):
    code = 405
    reason = "MethodNotAllowed"


class NotAcceptableError(StatusError):
    code = 406
    reason = "NotAcceptable"


class AlreadyExistsError(StatusError):
    code = 409
    reason = "AlreadyExists"

    @classmethod
    def for_object(cls, qualified_resource: str, name: str) -> AlreadyExistsError:
        return cls(
            f'{qualified_resource} "{name}" already exists',
            details=_object_details(qualified_resource, name),
        )


class ConflictError(StatusError):
    code = 409
    reason = "Conflict"

    @classmethod
    def for_object(cls, qualified_resource: str, name: str, why: str) -> ConflictError:
        return cls(
            f'Operation cannot be fulfilled on {qualified_resource} "{name}": {why}',
            details=_object_details(qualified_resource, name),
        )


class ExpiredError(StatusError):
    """A resourceVersion or continue token older than what can be served (HTTP 410)."""

    code = 410
    reason = "Expired"

    def __init__(self, message: str, *, oldest_revision: int | None = None) -> None:
        super().__init__(message)
        #: The oldest revision that can still be served, when known: a client relists from there.
        self.oldest_revision = oldest_revision


class RequestEntityTooLargeError(StatusError):
    code = 413
    reason = "RequestEntityTooLarge"


class UnsupportedMediaTypeError(StatusError):
    code = 415
    reason = "UnsupportedMediaType"


class InvalidError(StatusError):
    code = 422
    reason = "Invalid"

    @classmethod
    def for_field(cls, qualified_kind: str, name: str, field: str, why: str) -> InvalidError:
        return cls(
            f'{qualified_kind} "{name}" is invalid: {field}: {why}',
            details={
                "name": name,
                "kind": qualified_kind,
                "causes": [{"reason": "FieldValueInvalid", "message": why, "field": field}],
            },
        )


class TooManyRequestsError(StatusError):
    code = 429
    reason = "TooManyRequests"


class TimedOutError(StatusError):
    """A wait (for a resourceVersion, for etcd) ran out of time (HTTP 504, reason ``Timeout``)."""

    code = 504
    reason = "Timeout"


class EtcdUnavailableError(StatusError):
    """etcd could not be reached or has no quorum; the request failed fast rather than hang."""

    code = 503
    reason = "ServiceUnavailable"

    def fresh(self) -> EtcdUnavailableError:
        """A new error saying the same: what to raise again for a failure kept as a state."""
        return EtcdUnavailableError(self.message, retry_after=self.retry_after)


class EtcdUnreachableError(EtcdUnavailableError):
    """etcd cannot be reached: no connection to it, or no answer in time while it is judged down.
    The message is ``etcd is unreachable (<cause>)``."""

    def __init__(self, cause: str) -> None:
        super().__init__(f"etcd is unreachable ({cause})", retry_after=1)
        #: What failed, e.g. ``range: failed to connect to all addresses; ...``.
        self.cause = cause

    def fresh(self) -> EtcdUnreachableError:
        return EtcdUnreachableError(self.cause)

    @classmethod
    def of(cls, err: StatusError) -> EtcdUnavailableError | None:
        """The 503 to answer when a call to etcd failed with ``err`` because etcd could not serve it
        (unreachable, no answer in time, no quorum); None for any other failure."""
        if isinstance(err, EtcdUnavailableError):
            return err
        if isinstance(err, TimedOutError):  # a call to etcd that got no answer
            return cls(err.message)
        return None


class InternalError(StatusError):
    code = 500
    reason = "InternalError"


def _object_details(qualified_resource: str, name: str) -> StatusDetails:
    resource, _, group = qualified_resource.partition(".")
    return {"name": name, "group": group, "kind": resource}


class ConfigError(ValueError):
    """The configuration is unusable; the message is one line."""
