"""Every error watchcache raises, and their one mapping to a Kubernetes ``Status``.

Each error class carries its HTTP code and Kubernetes reason, so the HTTP layer (and embedded users)
never translate by hand: ``err.status()`` is the wire form. Errors from aetcd/grpc are translated at the
etcd adapter boundary with ``raise ... from``; recovery data (a compacted revision, a retry delay) stays
on the exception.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, NotRequired, TypedDict

__all__ = [
    "AlreadyExistsError",
    "ConfigError",
    "BadRequestError",
    "ConflictError",
    "EtcdUnavailableError",
    "EtcdUnreachableError",
    "ExpiredError",
    "FieldError",
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
    "go_quote",
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


FieldErrorType = Literal[
    "FieldValueRequired",
    "FieldValueInvalid",
    "FieldValueNotSupported",
    "FieldValueForbidden",
    "FieldValueTooLong",
]
"""k8s.io/apimachinery's ``field.ErrorType`` values that watchcache reports (a cause's ``reason``)."""

_TYPE_WORDS: dict[FieldErrorType, str] = {
    "FieldValueRequired": "Required value",
    "FieldValueInvalid": "Invalid value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
}
_VALUE_SHOWN: frozenset[FieldErrorType] = frozenset({"FieldValueInvalid", "FieldValueNotSupported"})


class _Omitted(enum.Enum):
    OMITTED = enum.auto()


OMITTED = _Omitted.OMITTED
"""A :class:`FieldError` value that is not shown (kube's ``omitValue``)."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field, worded as k8s.io/apimachinery's ``field.Error``: ``str()`` is
    ``{field}: {body}``, the body ``Invalid value: "Bad_Name": {detail}`` (the value shown for the
    invalid and unsupported kinds only, as Go's ``%q`` shows a string), ``Required value: {detail}``."""

    field: str
    """The field's path, e.g. ``metadata.name`` or ``metadata.labels``."""
    type: FieldErrorType
    value: object = OMITTED
    detail: str = ""

    @classmethod
    def required(cls, field: str, detail: str = "") -> FieldError:
        return cls(field, "FieldValueRequired", detail=detail)

    @classmethod
    def invalid(cls, field: str, value: object, detail: str) -> FieldError:
        return cls(field, "FieldValueInvalid", value, detail)

    @classmethod
    def not_supported(cls, field: str, value: object, supported: Sequence[str]) -> FieldError:
        detail = "supported values: " + ", ".join(go_quote(v) for v in supported)
        return cls(field, "FieldValueNotSupported", value, detail)

    @classmethod
    def too_long(cls, field: str, max_bytes: int) -> FieldError:
        unit = "byte" if max_bytes == 1 else "bytes"
        return cls(field, "FieldValueTooLong", detail=f"may not be more than {max_bytes} {unit}")

    def body(self) -> str:
        """The message without the field (a cause's ``message``): kube's ``ErrorBody``."""
        text = _TYPE_WORDS[self.type]
        if self.type in _VALUE_SHOWN and self.value is not OMITTED:
            text += f": {_go_value(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"

    def cause(self) -> StatusCause:
        return {"reason": self.type, "message": self.body(), "field": self.field}


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(text: str) -> str:
    """``text`` as Go's ``strconv.Quote`` (``%q``) writes it: printable characters as they are."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:  # a lone surrogate is no valid rune: Go writes U+FFFD
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _go_value(value: object) -> str:
    """A bad value as ``field.Error`` prints it: strings quoted, numbers and booleans bare,
    anything else as JSON."""
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return encoded.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _aggregate(errors: Sequence[FieldError]) -> str:
    """Several errors as one message, as k8s.io/apimachinery's ``errors.Aggregate``: duplicates
    once, more than one in brackets."""
    messages = list(dict.fromkeys(str(e) for e in errors))
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


class InvalidError(StatusError):
    """422 Invalid: field errors, worded and detailed as kube-apiserver's ``NewInvalid`` words them.

    A check that does not know the object (a key's name rules) raises it with the field errors
    alone; the API layer names the object with :meth:`about` before it reaches a client.
    """

    code = 422
    reason = "Invalid"

    def __init__(
        self,
        message: str,
        *,
        details: StatusDetails | None = None,
        errors: Sequence[FieldError] = (),
    ) -> None:
        super().__init__(message, details=details)
        #: The field errors, one cause each.
        self.errors = tuple(errors)

    @classmethod
    def of(
        cls, errors: Sequence[FieldError], *, kind: str = "", group: str = "", name: str = ""
    ) -> InvalidError:
        """``Flunder.wardle.example.com "Bad_Name" is invalid: metadata.name: Invalid value: ...``
        with ``details`` {kind, group, name, one cause per error}; without ``kind``, the errors alone."""
        causes = [e.cause() for e in errors]
        if not kind:
            message = _aggregate(errors) if errors else "the request is invalid"
            return cls(message, details={"causes": causes}, errors=errors)
        qualified = f"{kind}.{group}" if group else kind
        message = f"{qualified} {go_quote(name)} is invalid"
        if errors:
            message += f": {_aggregate(errors)}"
        return cls(
            message,
            details={"name": name, "group": group, "kind": kind, "causes": causes},
            errors=errors,
        )

    @property
    def names_object(self) -> bool:
        """Whether the error already names its object's kind."""
        return bool(self.details and self.details.get("kind"))

    def about(self, *, kind: str, group: str, name: str) -> InvalidError:
        """This error naming the object ``name`` of ``kind``; itself when it names one already."""
        if self.names_object:
            return self
        errors = self.errors or (FieldError("", "FieldValueInvalid", detail=self.message),)
        return InvalidError.of(errors, kind=kind, group=group, name=name)


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
