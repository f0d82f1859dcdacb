"""What a read or a watch asks for, parsed and validated in one place (as k8s' ``storage.ListOptions``).

:class:`ListOptions` and :class:`WatchOptions` are built from Python values (:meth:`ListOptions.of`)
or from a request's query (:meth:`ListOptions.from_query`), and hold what the request means: a parsed
selector, a revision, whether the read is exact. :data:`PARAMETERS` describes every query parameter
once, for the fronts' parsing and for the OpenAPI documents; a new parameter is one entry there and
one argument of the ``of`` it belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypedDict, Unpack

from ..errors import BadRequestError
from ..selectors import EVERYTHING, Selector

__all__ = [
    "PARAMETERS",
    "ListArgs",
    "ListOptions",
    "QueryParameter",
    "WatchArgs",
    "WatchOptions",
    "parse_flag",
    "parse_int",
    "parse_revision",
]

_TRUE = {"true", "1"}
_FALSE = {"false", "0", ""}

Verb = Literal["list", "watch", "get", "write"]


@dataclass(frozen=True, slots=True)
class QueryParameter:
    """One query parameter of the REST front, as the OpenAPI documents describe it."""

    name: str
    type: Literal["string", "integer", "boolean"]
    description: str
    verbs: frozenset[Verb]


PARAMETERS: tuple[QueryParameter, ...] = (
    QueryParameter(
        "labelSelector",
        "string",
        "A selector to restrict the list of returned objects by their labels.",
        frozenset({"list", "watch"}),
    ),
    QueryParameter(
        "fieldSelector",
        "string",
        "A selector to restrict the list of returned objects by their fields.",
        frozenset({"list", "watch"}),
    ),
    QueryParameter(
        "resourceVersion",
        "string",
        "Unset: the most recent state (consistent); 0: any cached state; N: not older than N.",
        frozenset({"list", "watch", "get"}),
    ),
    QueryParameter(
        "resourceVersionMatch",
        "string",
        "How resourceVersion applies to a list: NotOlderThan or Exact.",
        frozenset({"list", "watch"}),
    ),
    QueryParameter("limit", "integer", "The most items to return in one page.", frozenset({"list"})),
    QueryParameter("continue", "string", "The token of the next page of a paged list.", frozenset({"list"})),
    QueryParameter("watch", "boolean", "Watch for changes instead of listing.", frozenset({"list", "watch"})),
    QueryParameter(
        "allowWatchBookmarks", "boolean", "Ask for BOOKMARK events.", frozenset({"list", "watch"})
    ),
    QueryParameter(
        "sendInitialEvents",
        "boolean",
        "Begin the watch with the current objects, then an initial-events-end bookmark.",
        frozenset({"list", "watch"}),
    ),
    QueryParameter(
        "timeoutSeconds", "integer", "End the watch after this many seconds.", frozenset({"list", "watch"})
    ),
    QueryParameter(
        "dryRun", "string", "All: answer what the write would do, and write nothing.", frozenset({"write"})
    ),
    QueryParameter(
        "fieldValidation",
        "string",
        "Ignore, Warn or Strict: what to do with duplicate fields in the body.",
        frozenset({"write"}),
    ),
)


def parse_revision(value: str | int | None, what: str = "resourceVersion") -> int | None:
    """A resourceVersion as a revision (None when unset); 400 for anything but a non-negative integer."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        revision = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        revision = int(value)
    else:
        raise BadRequestError(f"invalid {what}: {str(value)[:64]!r}: must be a non-negative integer")
    if revision < 0:
        raise BadRequestError(f"invalid {what}: {revision}: must be a non-negative integer")
    return revision


def parse_flag(query: Mapping[str, str], name: str) -> bool | None:
    """A boolean query parameter (None when absent); 400 for anything but true or false."""
    value = query.get(name)
    if value is None:
        return None
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise BadRequestError(f"invalid {name}: {value[:64]!r}: want true or false")


def parse_int(query: Mapping[str, str], name: str) -> int | None:
    """A non-negative integer query parameter (None when absent or empty); 400 otherwise."""
    value = query.get(name)
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise BadRequestError(f"invalid {name}: {value[:64]!r}: want a non-negative integer")
    return int(value)


def _exact(match: str | None, revision: int | None) -> bool:
    """Whether a list is Exact; validates resourceVersionMatch as Kubernetes does."""
    if not match:
        return False
    if match not in ("NotOlderThan", "Exact"):
        raise BadRequestError(f"unsupported resourceVersionMatch {match[:64]!r}: want NotOlderThan or Exact")
    if revision is None:
        raise BadRequestError("resourceVersionMatch is forbidden unless resourceVersion is set")
    if match == "Exact" and revision == 0:
        raise BadRequestError('resourceVersionMatch "Exact" is forbidden for resourceVersion 0')
    return match == "Exact"


class _SelectArgs(TypedDict, total=False):
    namespace: str | None
    """The namespace to read or watch (None or "": all)."""
    label_selector: str | None
    """Kubernetes' ``labelSelector`` (``=``, ``==``, ``!=``, ``in``, ``notin``, ``key``, ``!key``)."""
    field_selector: str | None
    """Kubernetes' ``fieldSelector`` on ``metadata.name`` and ``metadata.namespace``."""
    resource_version: str | int | None
    """Unset: consistent; ``0``: any cached state; ``N``: not older than N."""
    resource_version_match: str | None
    """``NotOlderThan`` or ``Exact``."""
    version: str | None
    """The served version (None: the resource's first)."""


class ListArgs(_SelectArgs, total=False):
    """What a LIST asks for, as Python values: the query parameters, in snake case."""

    limit: int | None
    """Items per page (None or 0: all)."""
    continue_token: str | None
    """The ``continue`` token of the previous page."""


class WatchArgs(_SelectArgs, total=False):
    """What a WATCH asks for, as Python values: the query parameters, in snake case."""

    send_initial_events: bool | None
    """Begin with the current objects, then an initial-events-end bookmark (with
    ``resource_version_match="NotOlderThan"`` and ``allow_bookmarks``)."""
    allow_bookmarks: bool
    """Ask for BOOKMARK events."""


def _known(args: Mapping[str, object], kind: type) -> None:
    """A TypedDict's keys are only checked by type checkers: refuse other names at run time too."""
    unknown = set(args) - kind.__optional_keys__ - kind.__required_keys__  # type: ignore[attr-defined]
    if unknown:
        raise TypeError(f"unexpected argument(s): {', '.join(sorted(unknown))}")


def _selection(args: _SelectArgs) -> tuple[Selector, int | None]:
    return Selector.parse(args.get("label_selector"), args.get("field_selector")), parse_revision(
        args.get("resource_version")
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ListOptions:
    """A LIST (or GET), validated: what it selects, at which revision, how many."""

    namespace: str | None = None
    """The namespace the list is restricted to (None: all)."""
    selector: Selector = EVERYTHING
    revision: int | None = None
    """None: consistent; 0: any cached state; N: at least N (exactly N when :attr:`exact`)."""
    exact: bool = False
    limit: int = 0
    """Items per page (0: all)."""
    continue_token: str | None = None
    version: str | None = None
    """The served version (None: the resource's first)."""

    @classmethod
    def of(cls, **args: Unpack[ListArgs]) -> ListOptions:
        """Options from Python values, validated as kube-apiserver validates them (400 otherwise)."""
        _known(args, ListArgs)
        selector, revision = _selection(args)
        limit = args.get("limit")
        if limit is not None and limit < 0:
            raise BadRequestError(f"invalid limit: {limit}: must be a non-negative integer")
        match = args.get("resource_version_match")
        continue_token = args.get("continue_token")
        if continue_token:
            if revision is not None:
                raise BadRequestError("specifying resource version is not allowed when using continue")
            if match:
                raise BadRequestError("resourceVersionMatch is forbidden when using continue")
        return cls(
            namespace=args.get("namespace") or None,
            selector=selector,
            revision=revision,
            exact=_exact(match, revision),
            limit=limit or 0,
            continue_token=continue_token or None,
            version=args.get("version"),
        )

    @classmethod
    def from_query(
        cls, query: Mapping[str, str], *, namespace: str | None, version: str | None
    ) -> ListOptions:
        return cls.of(
            namespace=namespace,
            label_selector=query.get("labelSelector"),
            field_selector=query.get("fieldSelector"),
            resource_version=query.get("resourceVersion"),
            resource_version_match=query.get("resourceVersionMatch"),
            limit=parse_int(query, "limit"),
            continue_token=query.get("continue"),
            version=version,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchOptions:
    """A WATCH, validated: what it selects, where it starts, what it is sent besides changes."""

    namespace: str | None = None
    selector: Selector = EVERYTHING
    revision: int | None = None
    """Where the watch starts (see :attr:`initial`); None waits for a consistent state first."""
    initial: bool = True
    """Whether the current objects are sent first (as ADDED) rather than changes after ``revision``."""
    initial_events_end: bool = False
    """Whether the initial objects end with a bookmark annotated ``k8s.io/initial-events-end``."""
    allow_bookmarks: bool = False
    version: str | None = None

    @classmethod
    def of(cls, **args: Unpack[WatchArgs]) -> WatchOptions:
        """Options from Python values, validated as kube-apiserver validates them (400 otherwise)."""
        _known(args, WatchArgs)
        selector, revision = _selection(args)
        match = args.get("resource_version_match")
        send_initial_events = args.get("send_initial_events")
        allow_bookmarks = bool(args.get("allow_bookmarks"))
        if send_initial_events is not None:
            if match != "NotOlderThan":
                raise BadRequestError("sendInitialEvents requires resourceVersionMatch=NotOlderThan")
            if send_initial_events and not allow_bookmarks:
                raise BadRequestError("sendInitialEvents requires allowWatchBookmarks=true")
        elif match:
            raise BadRequestError(
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is set"
            )
        initial = (revision in (None, 0)) if send_initial_events is None else send_initial_events
        return cls(
            namespace=args.get("namespace") or None,
            selector=selector,
            revision=revision,
            initial=initial,
            initial_events_end=bool(send_initial_events),
            allow_bookmarks=allow_bookmarks,
            version=args.get("version"),
        )

    @classmethod
    def from_query(
        cls,
        query: Mapping[str, str],
        *,
        namespace: str | None,
        version: str | None,
        name: str | None = None,
    ) -> WatchOptions:
        """``name``: the object a legacy watch path names (``/…/{resource}/{name}?watch=true``)."""
        field_selector = query.get("fieldSelector")
        if name is not None:
            by_name = f"metadata.name={name}"
            field_selector = f"{field_selector},{by_name}" if field_selector else by_name
        return cls.of(
            namespace=namespace,
            label_selector=query.get("labelSelector"),
            field_selector=field_selector,
            resource_version=query.get("resourceVersion"),
            resource_version_match=query.get("resourceVersionMatch"),
            send_initial_events=parse_flag(query, "sendInitialEvents"),
            allow_bookmarks=bool(parse_flag(query, "allowWatchBookmarks")),
            version=version,
        )
