"""The soak's checker: judges a recorded history against etcd's own history. Pure logic, no I/O.

The ground truth is etcd's history of the resource prefix, recorded by a direct etcd watch that ran for
the whole soak (see ``docs/soak.md``). The checker judges what every client *got* and what it was
*owed*:

- ``watch``: each watch *segment* (one HTTP watch) received exactly the events etcd's history yields
  for the watcher's filter after where it started, up to what it covered (its last event or
  bookmark): nothing lost, repeated, reordered or invented, and every object whole (a fingerprint of
  the entire object, not one field). Selectors (label and field) and namespaces are applied as
  Kubernetes does (an object that starts matching is ADDED, one that stops is DELETED). A watch that
  starts with the current state (resourceVersion unset or 0, ``sendInitialEvents``) must send etcd's
  state at one revision, then the changes after it. A bookmark is never behind what the watcher was
  sent nor ahead of it (no event at or before its revision may follow it) nor ahead of etcd.
- ``liveness``: every change a watcher is owed reaches it within a bound (``Bounds.delivery`` outside
  fault windows; the window's end plus ``Bounds.recovery`` around one), per watcher; and at the end
  every watcher has reached etcd's last revision for its filter.
- ``error``: an answer other than success is a violation unless the fault schedule explains it (429,
  503, 504 or no answer during or just after a fault window); every 410 is justified (the client's
  revision was compacted, older than the replica's window, or older than the replica's cache); an
  ERROR event other than 410 and a client task that died are violations. ``protocol``: a line the
  client could not parse.
- ``relist``: a watch open on a replica whose cache had to be reloaded (compacted past) is ended, and
  never sent anything from the new history.
- ``list``/``get``: a list is etcd's state at its resourceVersion (consistent: at or after every write
  acknowledged before it began; ``Exact``: at the revision asked for; ``NotOlderThan``: at or after
  it), never a state etcd reached only by a write begun after it returned; paged lists are one
  snapshot. A GET returns the object's state at some revision the same rules allow.
- ``rv``: the resourceVersions one client observes never go backwards.
- ``truth``: every acknowledged write is in the recorded history (cross-checks the recorder), and the
  recorded history replays to the state etcd returned at the end.
- ``slow``: every deliberately slow watcher was cut off (when it was owed enough changes to overflow
  its buffer); ``latency``: fast watchers were not delayed by slow ones beyond a bound.

Clients of the etcd front (``protocol`` ``etcd``) are judged by the same rules, on etcd's terms: a
watch of a resource's (or a namespace's) key prefix is owed every change of every key in it (a PUT of
an absent key is ``ADDED``, of a present one ``MODIFIED``, a DELETE ``DELETED``), each with the exact
``KeyValue`` etcd had (value bytes, create and mod revisions, version) and, for updates and deletes,
the previous one as ``prev_kv``; its progress notifications (and RequestProgress answers) are
bookmarks; a Range is a list; a compacted cancel (or Range) is a 410, justified as one.

A history is plain JSON (``History.to_json``), so a run can be re-checked, or mutated to plant a bug.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

__all__ = [
    "Bounds",
    "Event",
    "Filter",
    "GetRecord",
    "History",
    "ListRecord",
    "Report",
    "RequestRecord",
    "Segment",
    "SlowEpisode",
    "Truth",
    "Violation",
    "WatcherRecord",
    "WriteRecord",
    "check",
    "digest",
    "kv_digest",
    "parse_selector",
]

Labels = Mapping[str, str]


# -- selectors (an independent implementation: the checker must not reuse watchcache's) ------------


def _split_terms(text: str) -> list[str]:
    parts: list[str] = []
    depth, current = 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def parse_selector(text: str | None) -> list[tuple[str, str, frozenset[str]]]:
    """``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``, comma-joined."""
    terms: list[tuple[str, str, frozenset[str]]] = []
    if not text:
        return terms
    for raw in _split_terms(text):
        term = raw.strip()
        if " notin " in term or " in " in term:
            op = "notin" if " notin " in term else "in"
            key, _, values = term.partition(f" {op} ")
            items = frozenset(v.strip() for v in values.strip().strip("()").split(",") if v.strip())
            terms.append((key.strip(), op, items))
        elif "!=" in term:
            key, _, value = term.partition("!=")
            terms.append((key.strip(), "!=", frozenset([value.strip()])))
        elif "==" in term or "=" in term:
            key, _, value = term.partition("==" if "==" in term else "=")
            terms.append((key.strip(), "=", frozenset([value.strip()])))
        elif term.startswith("!"):
            terms.append((term[1:].strip(), "!", frozenset()))
        else:
            terms.append((term, "exists", frozenset()))
    return terms


def _matches(terms: Sequence[tuple[str, str, frozenset[str]]], labels: Labels) -> bool:
    for key, op, values in terms:
        value = labels.get(key)
        if op in ("=", "in"):
            ok = value is not None and value in values
        elif op in ("!=", "notin"):
            ok = value is None or value not in values
        elif op == "exists":
            ok = value is not None
        else:  # "!"
            ok = value is None
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class Filter:
    """What one client asked for: a resource, a namespace, a label and a field selector."""

    resource: str
    namespace: str | None = None
    selector: str | None = None
    field_selector: str | None = None
    raw: bool = False
    """An etcd-front client's: every key of the prefix as etcd has it (:func:`kv_digest`)."""

    def terms(self) -> tuple[list[tuple[str, str, frozenset[str]]], list[tuple[str, str, frozenset[str]]]]:
        """(label terms, field terms); field terms are on ``metadata.name``/``metadata.namespace``."""
        return _parsed(self.selector), _parsed(self.field_selector)


@functools.lru_cache(maxsize=256)
def _parsed(text: str | None) -> list[tuple[str, str, frozenset[str]]]:
    return parse_selector(text)


# -- whole objects -----------------------------------------------------------------------------------


def digest(obj: Any, api_version: str | None = None) -> str:
    """A fingerprint of an object's whole content as stored in etcd.

    ``metadata.resourceVersion`` is left out (it is the key's revision, set on every read) and so is
    ``apiVersion`` — on a client's side only when it is ``api_version``, the version of the path the
    object was read through: served with another apiVersion, an object does not match.
    """
    if isinstance(obj, dict):
        obj = dict(obj)
        if api_version is None or obj.get("apiVersion") == api_version:
            obj.pop("apiVersion", None)
        meta = obj.get("metadata")
        if isinstance(meta, dict) and "resourceVersion" in meta:
            obj["metadata"] = {k: v for k, v in meta.items() if k != "resourceVersion"}
    return hashlib.blake2b(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()


def kv_digest(value: bytes, *, create_revision: int, mod_revision: int, version: int) -> str:
    """A fingerprint of an etcd ``KeyValue`` as an etcd client gets it: the value's bytes and the
    revisions and version etcd keeps with them (the key is compared on its own)."""
    head = f"{create_revision}/{mod_revision}/{version}/".encode()
    return hashlib.blake2b(head + value, digest_size=8).hexdigest()


MISSING_PREV_KV = "no prev_kv"
"""An etcd event's ``prev_kv`` fingerprint when the event had none although one was asked for."""


# -- the recorded history -------------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    """One object's state in etcd at some revision."""

    mod_revision: int
    labels: Labels
    token: str | None
    digest: str | None = None
    raw: str | None = None
    """The etcd ``KeyValue``'s fingerprint (:func:`kv_digest`); None when not known."""


@dataclass(frozen=True)
class Event:
    """One event a client received (or one the truth says it should have)."""

    rev: int
    type: str
    key: str
    token: str | None = None
    digest: str | None = None
    """Fingerprint of the whole object (see :func:`digest`); None when not recorded."""
    prev: str | None = None
    """An etcd event's ``prev_kv`` fingerprint (:func:`kv_digest`; :data:`MISSING_PREV_KV`): an
    update's; None for a creation (and for REST events)."""

    def brief(self) -> str:
        return f"{self.type} {self.key}@{self.rev}"


@dataclass
class Segment:
    """One HTTP watch: where it started, what it received, and how it ended."""

    replica: str
    start_rev: int
    """The resourceVersion asked for (0 for none)."""
    events: list[Event] = field(default_factory=list)
    bookmarks: list[int] = field(default_factory=list)
    end: str = "open"
    """``closed`` (the server ended the stream), ``expired`` (a 410 ERROR event), ``error`` (another
    ERROR event), ``malformed`` (a line the client could not parse), ``reset`` (connection lost),
    ``stopped`` (the soak ended it)."""
    recv_times: list[float] = field(default_factory=list)
    """Receive time of each event (same order as ``events``)."""
    bookmark_at: list[int] = field(default_factory=list)
    """For each bookmark, how many events had arrived before it."""
    bookmark_times: list[float] = field(default_factory=list)
    initial: str = ""
    """How the watch began: ``""`` from ``start_rev``; ``rv0`` (resourceVersion=0) and ``unset`` (none):
    the current state as ADDED events, then changes; ``send-initial`` (``sendInitialEvents=true``,
    NotOlderThan ``start_rev``, 0 for a consistent start): the same, ended by a bookmark."""
    initial_end: int = -1
    """``send-initial``: the index in ``bookmarks`` of the ``initial-events-end`` bookmark."""
    version: str = ""
    """The API version of the path watched (``etcd`` for an etcd-front watch)."""
    t_start: float = 0.0
    """When the request was sent."""
    t_open: float = 0.0
    """When the 200 answer arrived (the server had registered the watch by then)."""
    t_end: float = 0.0
    detail: str = ""
    """The ERROR event's Status, or the line that could not be parsed."""

    def covered(self, initial_rev: int | None = None) -> int:
        """Every event for the filter up to this revision was delivered (if the segment is right)."""
        start = self.start_rev if initial_rev is None else initial_rev
        last = self.events[-1].rev if self.events else start
        return max([start, last, *self.bookmarks])


@dataclass
class ListRecord:
    """One LIST (all its pages when paged)."""

    client: str
    replica: str
    resource: str
    namespace: str | None
    selector: str | None
    t_start: float
    t_end: float
    rv: int
    items: list[tuple[Any, ...]]
    """(key, resourceVersion, token[, digest]) of each item, in order."""
    page_rvs: list[int] = field(default_factory=list)
    field_selector: str | None = None
    rv_param: int | None = None
    """The resourceVersion asked for: None for a consistent list, 0 for any, N for NotOlderThan N
    (or exactly N with ``match`` Exact)."""
    match: str | None = None
    version: str = ""
    raw: bool = False
    """A Range through the etcd front: each item's fingerprint is :func:`kv_digest`'s."""
    count: int | None = None
    """A Range's ``count`` (of its first page): every key of the range at ``rv``."""


@dataclass
class GetRecord:
    """One GET of an object: what it answered (None for a 404)."""

    client: str
    replica: str
    resource: str
    key: str
    t_start: float
    t_end: float
    found: tuple[int, str | None, str | None] | None
    """(resourceVersion, token, digest) of the object returned."""
    rv_param: int | None = None
    version: str = ""


@dataclass
class RequestRecord:
    """A request that did not succeed: its answer's code (0 for none: connection error, timeout)."""

    client: str
    replica: str
    op: str
    """``watch``, ``list``, ``get`` or ``write``."""
    t_start: float
    t_end: float
    code: int
    reason: str = ""
    rv: int | None = None
    """The resourceVersion it was made from (a watch's start, a list's snapshot), if any."""
    protocol: str = "rest"
    """``rest``, or ``etcd`` (a call to the etcd front; 0 for no answer, 503/504/429 for etcd's
    UNAVAILABLE/DEADLINE_EXCEEDED/RESOURCE_EXHAUSTED, 410 for a compacted revision, 500 otherwise)."""


@dataclass
class WatcherRecord:
    """One reflector-like client: its lists and watch segments, and every RV it observed in order."""

    name: str
    resource: str
    namespace: str | None
    selector: str | None
    slow: bool
    segments: list[Segment] = field(default_factory=list)
    observed: list[tuple[str, int]] = field(default_factory=list)
    """(what, resourceVersion) in the order the client saw them: list, event, bookmark."""
    field_selector: str | None = None
    mode: str = "list"
    """How it (re)starts: ``list`` (list, then watch from its resourceVersion), or a watch that begins
    with the current state: ``rv0``, ``unset``, ``send-initial`` (see :attr:`Segment.initial`)."""
    bookmarks: bool = True
    """Whether it asks for bookmarks."""
    protocol: str = "rest"
    """``rest``, or ``etcd``: a watcher of the etcd front, of the resource's (or the namespace's) key
    prefix, with prev_kv and progress notifications (its bookmarks)."""

    @property
    def filter(self) -> Filter:
        return Filter(
            self.resource, self.namespace, self.selector, self.field_selector, self.protocol == "etcd"
        )


@dataclass
class WriteRecord:
    """A write acknowledged to a writer, with the revision it was told."""

    t_start: float
    t_ack: float
    rev: int
    resource: str
    key: str
    op: str
    """``put`` or ``delete``."""
    token: str | None
    via: str


@dataclass
class SlowEpisode:
    watcher: str
    t_begin: float
    t_end: float
    """When it read again; 0 when the soak ended first."""
    ended_by_server: bool
    """Whether the stream the watcher stopped reading was ended by the server (EOF or reset)."""
    events_after_resume: int


@dataclass
class History:
    """Everything the soak recorded; JSON round-trips through :meth:`to_json`/:meth:`from_json`."""

    truth: list[tuple[int, str, str, str | None]]
    """Recorded etcd events: (revision, ``PUT``/``DELETE``, key, value) of the object prefix."""
    initial: list[tuple[Any, ...]]
    """(key, mod_revision, value[, create_revision, version]) of every key when recording began."""
    start_rev: int
    final_state: list[tuple[Any, ...]] | None
    """(key, mod_revision, value[, create_revision, version]) read straight from etcd at ``final_rev``
    after the run."""
    final_rev: int
    prefix: str
    writes: list[WriteRecord] = field(default_factory=list)
    watchers: list[WatcherRecord] = field(default_factory=list)
    lists: list[ListRecord] = field(default_factory=list)
    slow_episodes: list[SlowEpisode] = field(default_factory=list)
    fault_windows: list[tuple[float, float, str]] = field(default_factory=list)
    truth_times: list[float] = field(default_factory=list)
    """When the recorder received each ``truth`` event (same order)."""
    recorder_blind: list[tuple[float, float]] = field(default_factory=list)
    """(from, to): spans when the recorder was not watching etcd live (a stream lost, then resumed);
    what it received at ``to`` may have been committed anywhere in the span."""
    gets: list[GetRecord] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    loads: list[tuple[str, float, float]] = field(default_factory=list)
    """(replica, started, ready): each time a replica process started and loaded its caches."""
    compactions: list[tuple[float, int]] = field(default_factory=list)
    """(time, revision) of each compaction."""
    forced_relists: list[tuple[str, float, float, int]] = field(default_factory=list)
    """(replica, stopped, continued, compaction revision): a replica stopped (SIGSTOP) while etcd
    was compacted past what its caches had, then continued: its caches must reload."""
    client_errors: list[tuple[str, str]] = field(default_factory=list)
    """(client, what): a client task that died."""
    t_stop: float = 0.0
    """When the soak stopped the clients (0: unknown)."""
    settings: dict[str, float] = field(default_factory=dict)
    """The replicas' settings the checker needs: ``window`` (watch cache size), ``watcher_buffer``."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> History:
        raw = json.loads(text)
        watchers = []
        for w in raw.pop("watchers"):
            segments = [
                Segment(**{**s, "events": [Event(**e) for e in s["events"]]}) for s in w.pop("segments")
            ]
            watchers.append(_watcher(w, segments))
        final_state = raw.pop("final_state")
        return cls(
            truth=[tuple(t) for t in raw.pop("truth")],  # type: ignore[misc]
            initial=[tuple(t) for t in raw.pop("initial")],  # type: ignore[misc]
            final_state=None if final_state is None else [tuple(t) for t in final_state],  # type: ignore[misc]
            writes=[WriteRecord(**w) for w in raw.pop("writes")],
            watchers=watchers,
            lists=[ListRecord(**{**r, "items": [tuple(i) for i in r["items"]]}) for r in raw.pop("lists")],
            slow_episodes=[SlowEpisode(**e) for e in raw.pop("slow_episodes")],
            fault_windows=[tuple(f) for f in raw.pop("fault_windows")],  # type: ignore[misc]
            gets=[
                GetRecord(**{**g, "found": None if g["found"] is None else tuple(g["found"])})
                for g in raw.pop("gets", [])
            ],
            requests=[RequestRecord(**r) for r in raw.pop("requests", [])],
            loads=[tuple(x) for x in raw.pop("loads", [])],  # type: ignore[misc]
            compactions=[tuple(x) for x in raw.pop("compactions", [])],  # type: ignore[misc]
            recorder_blind=[tuple(x) for x in raw.pop("recorder_blind", [])],  # type: ignore[misc]
            forced_relists=[tuple(x) for x in raw.pop("forced_relists", [])],  # type: ignore[misc]
            client_errors=[tuple(x) for x in raw.pop("client_errors", [])],  # type: ignore[misc]
            **raw,
        )


def _watcher(raw: dict[str, Any], segments: list[Segment]) -> WatcherRecord:
    observed = [(str(a), int(b)) for a, b, *_ in raw.pop("observed")]
    return WatcherRecord(**raw, segments=segments, observed=observed)


@dataclass(frozen=True)
class Bounds:
    """The checker's time bounds (seconds)."""

    delivery: float = 2.0
    """A change committed outside fault windows reaches every watcher owed it within this."""
    recovery: float = 5.0
    """After a fault window ends, everything owed arrives, and errors stop, within this."""
    bookmark_slack: float = 1.0
    """A bookmark is never ahead of etcd: of the revisions etcd had reached this soon after it was
    received (the recorder's and the writers' view of etcd lags the replicas' a little)."""
    justify_slack: float = 0.25
    """A 410 for being older than the window (or the replica's cache) counts the changes etcd had
    this soon after it (or after the replica was ready)."""


# -- the truth: etcd's history, per resource ---------------------------------------------------------


def _state(value: str | None, rev: int, created: tuple[int, int] | None = None) -> State | None:
    """The object a value is (None when it is not a JSON object: watchcache does not serve it);
    ``created``: the key's create revision and version, when known."""
    if value is None:
        return None
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    spec = obj.get("spec") or {}
    token = spec.get("token") if isinstance(spec, dict) else None
    raw = None
    if created is not None:
        raw = kv_digest(value.encode(), create_revision=created[0], mod_revision=rev, version=created[1])
    return State(rev, dict(labels) if isinstance(labels, dict) else {}, token, digest(obj), raw)


@dataclass(frozen=True)
class _Change:
    rev: int
    key: str
    prev: State | None
    new: State | None


class Truth:
    """etcd's history of the object prefix, indexed for the checks.

    Keys are ``{resource}/{namespace}/{name}`` (namespaced) or ``{resource}/{name}``; ``resource`` is
    the path segment after the group.
    """

    def __init__(self, history: History, namespaced: Mapping[str, bool]) -> None:
        self.prefix = history.prefix
        self.namespaced = dict(namespaced)
        self.start_rev = history.start_rev
        self.changes: dict[str, list[_Change]] = {r: [] for r in namespaced}
        # key -> ([revisions], [state at that revision or None])
        self.timeline: dict[str, tuple[list[int], list[State | None]]] = {}
        current: dict[str, State] = {}
        # Each key's create revision and version (etcd's; unknown for an initial key recorded
        # without them).
        created: dict[str, tuple[int, int] | None] = {}
        for key, rev, value, *meta in history.initial:
            short = self.short_key(key)
            if short is None:
                continue
            created[short] = (meta[0], meta[1]) if meta else None
            state = _state(value, rev, created[short])
            if state is not None:
                current[short] = state
                self._at(short, history.start_rev, state)
        last = history.start_rev
        self.events: dict[tuple[int, str], tuple[str, str | None]] = {}
        # When each revision was first known to be committed: the recorder's receive time, or an
        # acknowledgement to a writer, whichever came first.
        evidence: dict[int, float] = {}
        times = history.truth_times if len(history.truth_times) == len(history.truth) else []
        for i, (rev, kind, key, value) in enumerate(history.truth):
            if rev < last:
                raise ValueError(f"recorded history goes backwards at revision {rev}")
            last = rev
            if times:
                evidence[rev] = min(evidence.get(rev, math.inf), times[i])
            short = self.short_key(key)
            if short is None:
                continue
            if kind == "PUT":
                was = created.get(short, (rev, 0))
                created[short] = None if was is None else (was[0], was[1] + 1)
            else:
                created.pop(short, None)
            new = _state(value, rev, created.get(short)) if kind == "PUT" else None
            self.events[(rev, short)] = (kind, new.token if new else None)
            prev = current.get(short)
            if prev is None and new is None:
                continue
            if new is None:
                del current[short]
            else:
                current[short] = new
            self.changes[self.resource_of(short)].append(_Change(rev, short, prev, new))
            self._at(short, rev, new)
        self.final = current
        self.last_rev = last
        for write in history.writes:
            if write.rev in evidence or not times:
                evidence[write.rev] = min(evidence.get(write.rev, math.inf), write.t_ack)
        # A revision was committed no later than any later one: suffix minima, non-decreasing.
        self._ev_revs = sorted(evidence)
        self._ev_times: list[float] = []
        best = math.inf
        for rev in reversed(self._ev_revs):
            best = min(best, evidence[rev])
            self._ev_times.append(best)
        self._ev_times.reverse()
        self.blind = sorted(history.recorder_blind)
        self._expected: dict[Filter, tuple[list[int], list[Event]]] = {}

    def _at(self, key: str, rev: int, state: State | None) -> None:
        revs, states = self.timeline.setdefault(key, ([], []))
        revs.append(rev)
        states.append(state)

    @property
    def timed(self) -> bool:
        """Whether commit times are known (the liveness checks need them)."""
        return bool(self._ev_revs)

    def commit_time(self, rev: int) -> float | None:
        """When ``rev`` was known to be committed (None: unknown)."""
        i = bisect.bisect_left(self._ev_revs, rev)
        return self._ev_times[i] if i < len(self._ev_times) else None

    def committed_by(self, t: float) -> int:
        """The last revision known to be committed at time ``t``."""
        i = bisect.bisect_right(self._ev_times, t)
        return self._ev_revs[i - 1] if i > 0 else self.start_rev

    def reached_at_most(self, t: float) -> int:
        """The highest revision etcd may have reached by ``t``: what the recorder had seen by then,
        unless it was not watching live at ``t`` (then whatever it saw once it was back, which may
        have been committed at any time while it was away)."""
        return self.committed_by(self.back_by(t))

    def back_by(self, t: float) -> float:
        """``t``, or, if the recorder was not watching live then, when it was back: what it received
        by that time may have been committed at ``t`` already."""
        for start, end in self.blind:
            if start <= t <= end:
                t = end
        return t

    def short_key(self, key: str) -> str | None:
        """``resource/ns/name`` for an object key under the prefix (None for anything else)."""
        if not key.startswith(self.prefix + "/"):
            return None
        parts = key[len(self.prefix) + 1 :].split("/")
        if len(parts) < 2:
            return None  # a resource's progress key
        resource, rest = parts[0], parts[1:]
        if resource not in self.namespaced or len(rest) != (2 if self.namespaced[resource] else 1):
            return None
        if not all(rest):
            return None
        return "/".join([resource, *rest])

    @staticmethod
    def resource_of(key: str) -> str:
        return key.split("/", 1)[0]

    @staticmethod
    def namespace_of(key: str) -> str | None:
        parts = key.split("/")
        return parts[1] if len(parts) == 3 else None

    @staticmethod
    def name_of(key: str) -> str:
        return key.rsplit("/", 1)[1]

    def state_at(self, key: str, rev: int) -> State | None:
        timeline = self.timeline.get(key)
        if timeline is None:
            return None
        revs, states = timeline
        i = bisect.bisect_right(revs, rev) - 1
        return states[i] if i >= 0 else None

    def in_scope(self, flt: Filter, key: str) -> bool:
        """Whether ``key`` is in the filter's resource, namespace and field selector."""
        if self.resource_of(key) != flt.resource:
            return False
        namespace = self.namespace_of(key)
        if flt.namespace is not None and namespace != flt.namespace:
            return False
        _, fields = flt.terms()
        if fields:
            values = {"metadata.name": self.name_of(key), "metadata.namespace": namespace or ""}
            if not _matches(fields, values):
                return False
        return True

    def list_at(self, flt: Filter, rev: int) -> dict[str, State]:
        """The filter's objects at ``rev``."""
        labels, _ = flt.terms()
        out: dict[str, State] = {}
        for key in self.timeline:
            if not self.in_scope(flt, key):
                continue
            state = self.state_at(key, rev)
            if state is not None and _matches(labels, state.labels):
                out[key] = state
        return out

    def expected(self, flt: Filter) -> tuple[list[int], list[Event]]:
        """Every event a watcher of this filter is owed over the whole history (Kubernetes'
        selector transitions), with their revisions for bisecting. A DELETED event carries the
        object's last content (for one leaving the selector: the content it matched with)."""
        cached = self._expected.get(flt)
        if cached is not None:
            return cached
        labels, _ = flt.terms()
        events: list[Event] = []
        for change in self.changes.get(flt.resource, []):
            if not self.in_scope(flt, change.key):
                continue
            if flt.raw:  # etcd's terms: no selector; an update's and a deletion's prev_kv
                prev = change.prev
                if change.new is not None:
                    kind, prev_raw = ("ADDED", None) if prev is None else ("MODIFIED", prev.raw)
                    events.append(
                        Event(change.rev, kind, change.key, change.new.token, change.new.raw, prev_raw)
                    )
                elif prev is not None:
                    events.append(Event(change.rev, "DELETED", change.key, prev.token, prev.raw))
                continue
            was = change.prev is not None and _matches(labels, change.prev.labels)
            now = change.new is not None and _matches(labels, change.new.labels)
            if now:
                assert change.new is not None
                kind = "MODIFIED" if was else "ADDED"
                events.append(Event(change.rev, kind, change.key, change.new.token, change.new.digest))
            elif was:
                assert change.prev is not None
                events.append(Event(change.rev, "DELETED", change.key, change.prev.token, change.prev.digest))
        result = ([e.rev for e in events], events)
        self._expected[flt] = result
        return result

    def changes_after(self, resource: str, rev: int, by: float) -> int:
        """How many changes of ``resource`` after ``rev`` were known to be committed at ``by``."""
        return sum(
            1
            for c in self.changes.get(resource, [])
            if c.rev > rev and (t := self.commit_time(c.rev)) is not None and t <= by
        )


# -- the checks --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    kind: str
    """``watch``, ``liveness``, ``error``, ``protocol``, ``relist``, ``list``, ``get``, ``rv``,
    ``truth``, ``slow``, ``latency`` (and the driver's own: ``graceful``, ``fd``, ``client``,
    ``coverage``)."""
    who: str
    detail: str


@dataclass
class Report:
    violations: list[Violation] = field(default_factory=list)
    segments_checked: int = 0
    events_checked: int = 0
    lists_checked: int = 0
    gets_checked: int = 0
    bookmarks_checked: int = 0
    expired_segments: int = 0
    initial_segments: Counter[str] = field(default_factory=Counter)
    """Watches that began with the current state, by how (rv0, unset, send-initial)."""
    list_kinds: Counter[str] = field(default_factory=Counter)
    """Lists checked, by kind (consistent, rv0, NotOlderThan, Exact)."""
    answers_410: int = 0
    """410 answers and ERROR events, all justified unless reported."""
    errors_explained: int = 0
    """Other failed requests explained by a fault window."""
    forced_relist_expired: int = 0
    """Watches ended with 410 by a replica reloading its caches after a compaction past them."""
    owed: int = 0
    """(watcher, change) pairs owed, each judged against its delivery deadline."""
    late: int = 0
    delays_calm: list[float] = field(default_factory=list)
    """Commit-to-delivery delays of changes committed outside fault windows (fast watchers)."""
    slow_unjudged: int = 0
    """Slow-watcher episodes not cut off that were owed too few changes to overflow (not judged)."""
    latency_p99_slow: float | None = None
    latency_p99_calm: float | None = None
    latency_samples: tuple[int, int] = (0, 0)

    def add(self, kind: str, who: str, detail: str) -> None:
        self.violations.append(Violation(kind, who, detail))

    def by_kind(self) -> dict[str, int]:
        return dict(Counter(v.kind for v in self.violations))

    def delay_summary(self) -> dict[str, float | int | None]:
        return {
            "samples": len(self.delays_calm),
            "p50_s": _percentile(self.delays_calm, 0.5),
            "p99_s": _percentile(self.delays_calm, 0.99),
            "max_s": max(self.delays_calm) if self.delays_calm else None,
        }


def _compare_events(got: Sequence[Event], want: Sequence[Event], offset: int = 0) -> str | None:
    """None if equal, else what is wrong (loss, repetition, reordering or difference)."""
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        n = i + offset
        if (g.rev, g.type, g.key) != (w.rev, w.type, w.key):
            seen = {(e.rev, e.key) for e in got[:i]}
            later = {(e.rev, e.key) for e in got[i + 1 :]}
            if (g.rev, g.key) in seen:
                what = "repeated"
            elif (i > 0 and g.rev < got[i - 1].rev) or (w.rev, w.key) in later:
                what = "reordered"
            elif g.rev > w.rev:
                what = "lost"
            else:
                what = "unexpected"
            return f"event #{n}: {what}: got {g.brief()}, etcd's history says {w.brief()}"
        if g.token != w.token and (w.type != "DELETED" or g.digest is not None):
            return f"event #{n}: {g.brief()} carries content {g.token!r}, etcd's history says {w.token!r}"
        if g.digest is not None and w.digest is not None and g.digest != w.digest:
            return f"event #{n}: {g.brief()}: the object differs from etcd's (token {g.token!r})"
        if g.prev != w.prev:
            return f"event #{n}: {g.brief()}: its prev_kv differs from etcd's previous value"
    if len(got) > len(want):
        g = got[len(want)]
        what = "repeated" if any((e.rev, e.key) == (g.rev, g.key) for e in want) else "unexpected"
        return f"event #{len(want) + offset}: {what}: got {g.brief()} beyond what etcd's history has"
    if len(got) < len(want):
        missing = want[len(got)].brief()
        return f"event #{len(got) + offset}: lost: {missing} never arrived (covered up to a later revision)"
    return None


def _same_items(got: Iterable[Event], want: Mapping[str, State]) -> str | None:
    """None when ``got`` (ADDED events) is exactly the state ``want``, else the first difference."""
    seen: dict[str, Event] = {}
    for event in got:
        if event.key in seen:
            return f"{event.key} twice"
        seen[event.key] = event
    missing = sorted(set(want) - set(seen))
    extra = sorted(set(seen) - set(want))
    wrong = sorted(
        k
        for k in set(seen) & set(want)
        if seen[k].rev != want[k].mod_revision
        or seen[k].token != want[k].token
        or (seen[k].digest is not None and seen[k].digest != want[k].digest)
    )
    if missing or extra or wrong:
        return f"missing {missing[:3]}, extra {extra[:3]}, stale {wrong[:3]}"
    return None


class _Acks:
    """The writes acknowledged before a time, per resource (what a consistent read must include),
    and the first write begun after a time (what no read that returned before may show)."""

    def __init__(self, history: History, resources: Iterable[str]) -> None:
        acked = sorted(history.writes, key=lambda w: w.t_ack)
        self.ack_times = [w.t_ack for w in acked]
        self.prefix_max: dict[str, list[int]] = {}
        for resource in resources:
            best, running = [], 0
            for w in acked:
                if w.resource == resource:
                    running = max(running, w.rev)
                best.append(running)
            self.prefix_max[resource] = best
        started = sorted(history.writes, key=lambda w: w.t_start)
        self.start_times = [w.t_start for w in started]
        self.suffix_min = [math.inf] * (len(started) + 1)
        for i in range(len(started) - 1, -1, -1):
            self.suffix_min[i] = min(self.suffix_min[i + 1], started[i].rev)

    def must_see(self, resource: str, t: float) -> int:
        i = bisect.bisect_left(self.ack_times, t)
        return self.prefix_max[resource][i - 1] if i > 0 else 0

    def begun_after(self, t: float) -> float:
        return self.suffix_min[bisect.bisect_right(self.start_times, t)]


def _real_states(events: Sequence[Event], truth: Truth, flt: Filter) -> str | None:
    """None when ``events`` are distinct ADDEDs, each an object's real state in etcd at its revision
    and in the filter then: part of an initial state (a stream cut short while sending it)."""
    labels, _ = flt.terms()
    keys: set[str] = set()
    for event in events:
        state = truth.state_at(event.key, event.rev)
        if (
            event.type != "ADDED"
            or event.key in keys
            or state is None
            or state.mod_revision != event.rev
            or event.token != state.token
            or (event.digest is not None and event.digest != state.digest)
            or not truth.in_scope(flt, event.key)
            or not _matches(labels, state.labels)
        ):
            return f"initial event {event.brief()} is not an object's state in etcd"
        keys.add(event.key)
    return None


def _initial_state(segment: Segment, truth: Truth, flt: Filter, lower: int) -> tuple[int, int, str | None]:
    """Where a watch that began with the current state switched to changes: (number of initial
    events, the revision X of that state, problem or None). The initial events must be etcd's state
    for the filter at X, with X at or after ``lower``; the events after them are judged as changes
    after X by the caller. A stream cut short while sending the initial state gives (-1, 0, problem
    or None): its events must be real states, and nothing more can be judged."""
    events = segment.events
    if segment.initial == "send-initial":
        if not 0 <= segment.initial_end < len(segment.bookmarks):
            return -1, 0, _real_states(events, truth, flt)
        k = segment.bookmark_at[segment.initial_end]
        x = segment.bookmarks[segment.initial_end]
        initial = events[:k]
        if any(e.type != "ADDED" for e in initial):
            return k, x, "an initial event that is not ADDED"
        if x < lower:
            return k, x, f"initial state at {x}, before {lower} (what the request asked for)"
        problem = _same_items(initial, truth.list_at(flt, x))
        return k, x, None if problem is None else f"initial state is not etcd's state at {x}: {problem}"
    # rv0 / unset: no marker; the initial events are a prefix of distinct ADDEDs.
    p, keys = 0, set()
    while p < len(events) and events[p].type == "ADDED" and events[p].key not in keys:
        keys.add(events[p].key)
        p += 1
    revs, expected = truth.expected(flt)
    first_problem = None
    for k in range(p, -1, -1):
        initial = events[:k]
        lo = max([lower, *(e.rev for e in initial)])
        if k < len(events):
            hi = events[k].rev - 1
        elif segment.bookmarks:
            hi = max(segment.bookmarks)
        else:
            hi = truth.last_rev
        candidates = [lo] + [r for r in revs[bisect.bisect_right(revs, lo) :] if r <= hi]
        for x in candidates:
            if _same_items(initial, truth.list_at(flt, x)) is not None:
                continue
            rest = events[k:]
            covered = segment.covered(x)
            want = expected[bisect.bisect_right(revs, x) : bisect.bisect_right(revs, covered)]
            if _compare_events(rest, want) is None:
                return k, x, None
            if first_problem is None:
                first_problem = (k, x)
    if first_problem is not None:
        return first_problem[0], first_problem[1], None  # the caller reports the changes' problem
    if p == len(events) and not segment.bookmarks and _real_states(events, truth, flt) is None:
        return -1, 0, None
    return p, lower, f"the first {p} ADDED events are etcd's state at no revision at or after {lower}"


def _check_watchers(history: History, truth: Truth, acks: _Acks, bounds: Bounds, report: Report) -> None:
    for watcher in history.watchers:
        flt = watcher.filter
        revs, expected = truth.expected(flt)
        for n, segment in enumerate(watcher.segments):
            report.segments_checked += 1
            report.events_checked += len(segment.events)
            report.bookmarks_checked += len(segment.bookmarks)
            where = f"segment {n} (from {segment.start_rev} on {segment.replica}, ended {segment.end})"
            if segment.end == "expired":
                report.expired_segments += 1
            if segment.end == "error":
                report.add("error", watcher.name, f"{where}: an ERROR event: {segment.detail[:300]}")
            if segment.end == "malformed":
                report.add("protocol", watcher.name, f"{where}: unparseable stream: {segment.detail[:300]}")
            k, x = 0, segment.start_rev
            if segment.initial:
                report.initial_segments[segment.initial] += 1
                consistent = segment.initial == "unset" or (
                    segment.initial == "send-initial" and segment.start_rev == 0
                )
                lower = acks.must_see(watcher.resource, segment.t_start) if consistent else segment.start_rev
                k, x, problem = _initial_state(segment, truth, flt, lower)
                if problem is not None:
                    report.add("watch", watcher.name, f"{where}: {problem}")
                if problem is not None or k < 0:
                    continue
            covered = segment.covered(x)
            if covered > truth.last_rev:
                report.add(
                    "watch",
                    watcher.name,
                    f"{where} covers revision {covered}, beyond etcd's last recorded revision "
                    f"{truth.last_rev}",
                )
                continue
            lo = bisect.bisect_right(revs, x)
            hi = bisect.bisect_right(revs, covered)
            problem = _compare_events(segment.events[k:], expected[lo:hi], offset=k)
            if problem is not None:
                report.add("watch", watcher.name, f"{where}: {problem}")
            _check_bookmarks(watcher.name, n, segment, truth=truth, bounds=bounds, report=report, initial=k)


def _check_bookmarks(
    who: str, n: int, segment: Segment, *, truth: Truth, bounds: Bounds, report: Report, initial: int
) -> None:
    """A bookmark is never behind what the watcher was sent, nor ahead of it (an event at or before
    its revision arriving after it), nor ahead of etcd (a revision etcd had not reached)."""
    positions = segment.bookmark_at if len(segment.bookmark_at) == len(segment.bookmarks) else []
    times = segment.bookmark_times if len(segment.bookmark_times) == len(segment.bookmarks) else []
    for i, bookmark in enumerate(segment.bookmarks):
        if bookmark < segment.start_rev:
            report.add("watch", who, f"segment {n}: bookmark {bookmark} before its start")
            continue
        if not positions:
            continue
        p = positions[i]
        before = [e.rev for e in segment.events[initial:p]]
        if before and bookmark < max(before):
            report.add(
                "watch",
                who,
                f"segment {n}: bookmark {bookmark} is behind an event it was already sent ({max(before)})",
            )
        after = next((e for e in segment.events[max(p, initial) :] if e.rev <= bookmark), None)
        if after is not None:
            report.add(
                "watch",
                who,
                f"segment {n}: bookmark {bookmark} is ahead of what the watcher was sent: "
                f"{after.brief()} arrived after it",
            )
        if times and truth.timed:
            etcd_rev = truth.reached_at_most(times[i] + bounds.bookmark_slack)
            if bookmark > etcd_rev:
                report.add(
                    "watch",
                    who,
                    f"segment {n}: bookmark {bookmark} at {times[i]:.2f} s is ahead of etcd "
                    f"(at {etcd_rev} by then)",
                )


def _windows(history: History, watcher: WatcherRecord | None = None) -> list[tuple[float, float]]:
    """The fault windows that excuse a watcher's delays: every window of a fault of etcd, one of a
    replica (a kind ``...@replica``) only when the watcher had a watch on that replica then; and its
    own slow-watcher episodes (it stopped reading). Without a watcher, every window."""
    out = []
    for a, b, kind in history.fault_windows:
        _, _, replica = kind.partition("@")
        if replica and watcher is not None:
            on = any(s.replica == replica and s.t_open <= b and s.t_end >= a for s in watcher.segments)
            if not on:
                continue
        out.append((a, b))
    if watcher is not None:
        out += [(e.t_begin, e.t_end or math.inf) for e in history.slow_episodes if e.watcher == watcher.name]
    return sorted(out)


def _deadline(t: float, windows: Sequence[tuple[float, float]], bounds: Bounds) -> float:
    """When a change committed at ``t`` must have arrived: ``delivery`` later, unless a fault window
    is open meanwhile: then ``recovery`` after that window ends."""
    deadline = t + bounds.delivery
    changed = True
    while changed:
        changed = False
        for a, b in windows:
            if a <= deadline and b >= t and b + bounds.recovery > deadline:
                deadline = b + bounds.recovery
                changed = True
    return deadline


def _observations(history: History, watcher: WatcherRecord) -> tuple[list[float], list[int]]:
    """When the watcher knew what: (times, the highest revision known by then), non-decreasing.
    A list at R, an event at R, a bookmark at R: every change of its filter up to R is known."""
    points: list[tuple[float, int]] = []
    for record in history.lists:
        if record.client == watcher.name:
            points.append((record.t_end, record.rv))
    for segment in watcher.segments:
        points += zip(segment.recv_times, (e.rev for e in segment.events), strict=False)
        points += zip(segment.bookmark_times, segment.bookmarks, strict=False)
    points.sort()
    times, best, running = [], [], 0
    for t, rev in points:
        running = max(running, rev)
        times.append(t)
        best.append(running)
    return times, best


def _check_liveness(history: History, truth: Truth, bounds: Bounds, report: Report) -> None:
    if not truth.timed:
        return
    faults = _windows(history)
    # Most watchers share their fault windows: each deadline is computed once per set of windows.
    deadline_cache: dict[tuple[tuple[float, float], ...], dict[float, float]] = {}
    for watcher in history.watchers:
        if watcher.slow:
            continue  # deliberately slow (a tiny receive buffer, episodes of not reading): see _check_slow
        _, expected = truth.expected(watcher.filter)
        # At the end: caught up with etcd's last revision for its filter.
        times, best = _observations(history, watcher)
        reached = best[-1] if best else 0
        if expected and reached < expected[-1].rev:
            report.add(
                "liveness",
                watcher.name,
                f"never reached etcd's last change for its filter ({expected[-1].brief()}): "
                f"the last revision it knew was {reached}",
            )
        starts = [r.t_start for r in history.lists if r.client == watcher.name]
        starts += [s.t_start for s in watcher.segments]
        if not starts:
            continue
        began = min(starts)
        windows = tuple(_windows(history, watcher))
        deadlines = deadline_cache.setdefault(windows, {})
        late: list[tuple[float, float, float, Event]] = []
        owed = 0
        for event in expected:
            committed = truth.commit_time(event.rev)
            if committed is None or committed <= began:
                continue
            if history.t_stop and committed >= history.t_stop:
                continue
            owed += 1
            deadline = deadlines.get(committed)
            if deadline is None:
                deadline = deadlines[committed] = _deadline(committed, windows, bounds)
            i = bisect.bisect_left(best, event.rev)
            arrived = times[i] if i < len(times) else math.inf
            if arrived > deadline and (not history.t_stop or deadline < history.t_stop):
                late.append((arrived - deadline, committed, arrived, event))
            elif arrived < math.inf and not _explained(committed, committed + bounds.delivery, faults):
                report.delays_calm.append(max(0.0, arrived - committed))
        report.owed += owed
        report.late += len(late)
        if late:
            _, committed, arrived, event = max(late, key=lambda x: x[0])
            report.add(
                "liveness",
                watcher.name,
                f"{len(late)} of {owed} changes it was owed arrived late; the worst: {event.brief()} "
                f"committed at {committed:.2f} s, known at "
                + ("never" if arrived == math.inf else f"{arrived:.2f} s")
                + f" (deadline {_deadline(committed, windows, bounds):.2f} s)",
            )


def _explained(t0: float, t1: float, windows: Sequence[tuple[float, float]]) -> bool:
    return any(a <= t1 and t0 <= b for a, b in windows)


def _justified_410(
    history: History,
    truth: Truth,
    bounds: Bounds,
    *,
    op: str,
    replica: str,
    resource: str,
    rv: int | None,
    t: float,
) -> str | None:
    """Why a 410 at time ``t`` to a client at revision ``rv`` was right, or None."""
    if rv is None:
        return "no revision to judge"
    for when, revision in history.compactions:
        if when <= t and rv < revision:
            return f"compacted at {revision}"
    if op != "watch":
        return None
    loads = [(begin, ready) for name, begin, ready in history.loads if name == replica and begin <= t]
    if loads:
        _, ready = max(loads)
        loaded = truth.reached_at_most(ready + bounds.justify_slack)
        if rv < loaded:
            return f"older than the replica's cache (loaded at or before {loaded})"
    window = int(history.settings.get("window", 0))
    if window and truth.changes_after(resource, rv, truth.back_by(t + bounds.justify_slack)) > window:
        return f"older than the window of {window} changes"
    return None


def _check_errors(history: History, truth: Truth, bounds: Bounds, report: Report) -> None:
    resource_of = {w.name: w.resource for w in history.watchers}
    for request in history.requests:
        windows = [
            (a, b + bounds.recovery)
            for a, b, kind in history.fault_windows
            if kind.partition("@")[2] in ("", request.replica)
        ]
        who = f"{request.client} ({request.replica})"
        what = f"{request.op} at {request.t_start:.2f}-{request.t_end:.2f} s answered {request.code}"
        what += f" {request.reason}" if request.reason else ""
        if request.code == 410:
            report.answers_410 += 1
            resource = resource_of.get(request.client, "")
            if _justified_410(
                history,
                truth,
                bounds,
                op=request.op,
                replica=request.replica,
                resource=resource,
                rv=request.rv,
                t=request.t_end,
            ):
                continue
            report.add("error", who, f"{what} from revision {request.rv}: not justified")
            continue
        tolerated = request.code in (0, 429, 503, 504) or (
            request.op == "write" and request.code in (404, 409)
        )
        if tolerated and _explained(request.t_start, request.t_end, windows):
            report.errors_explained += 1
            continue
        report.add("error", who, what + (" outside any fault window" if tolerated else ""))
    for watcher in history.watchers:
        for n, segment in enumerate(watcher.segments):
            if segment.end != "expired":
                continue
            report.answers_410 += 1
            last = segment.events[-1].rev if segment.events else segment.start_rev
            last = max([last, *segment.bookmarks])
            if not _justified_410(
                history,
                truth,
                bounds,
                op="watch",
                replica=segment.replica,
                resource=watcher.resource,
                rv=last,
                t=segment.t_end or math.inf,
            ):
                report.add(
                    "error",
                    watcher.name,
                    f"segment {n} (from {segment.start_rev} on {segment.replica}) ended by a 410 at "
                    f"{segment.t_end:.2f} s while at revision {last}: not justified",
                )
    for who, detail in history.client_errors:
        report.add("client", who, detail)


def _check_forced_relists(history: History, bounds: Bounds, report: Report) -> None:
    for replica, stopped, resumed, compacted in history.forced_relists:
        for watcher in history.watchers:
            for n, segment in enumerate(watcher.segments):
                if segment.replica != replica or not segment.t_open or segment.t_open >= stopped:
                    continue
                if segment.t_end and segment.t_end < stopped:
                    continue
                where = f"segment {n} (from {segment.start_rev} on {replica}, ended {segment.end})"
                past = [e.brief() for e in segment.events if e.rev >= compacted]
                past += [f"BOOKMARK@{b}" for b in segment.bookmarks if b >= compacted]
                if past:
                    report.add(
                        "relist",
                        watcher.name,
                        f"{where} was open while etcd was compacted at {compacted} past its replica's "
                        f"caches, and was sent {past[0]} from after the reload instead of a 410",
                    )
                elif segment.end == "expired":
                    report.forced_relist_expired += 1
                # A deliberately slow watcher is told when it has read what was sent before it.
                if not watcher.slow and (
                    segment.t_end > resumed + bounds.recovery or segment.end in ("open", "stopped")
                ):
                    report.add(
                        "relist",
                        watcher.name,
                        f"{where} was open across the reload of {replica}'s caches at {resumed:.2f} s "
                        f"and not ended within {bounds.recovery:g} s",
                    )


def _check_rvs(history: History, report: Report) -> None:
    clients: dict[str, list[tuple[str, int]]] = {w.name: w.observed for w in history.watchers}
    by_reader: dict[str, list[tuple[str, int]]] = {}
    for record in history.lists:
        # A watcher's lists are in its own observations (whatever its name: etcd-watcher-N too).
        if record.client not in clients and record.rv_param is None:
            by_reader.setdefault(record.client, []).append(("list", record.rv))
    clients.update(by_reader)
    for name, observed in clients.items():
        last = 0
        last_what = ""
        for what, rv in observed:
            if rv < last:
                report.add("rv", name, f"resourceVersion went backwards: {last_what} {last} then {what} {rv}")
            if rv >= last:
                last, last_what = rv, what


def _list_kind(record: ListRecord) -> str:
    if record.rv_param is None:
        return "consistent"
    if record.rv_param == 0:
        return "rv0"
    return record.match or "NotOlderThan"


def _check_lists(history: History, truth: Truth, acks: _Acks, report: Report) -> None:
    for record in history.lists:
        report.lists_checked += 1
        kind = _list_kind(record)
        report.list_kinds[kind] += 1
        who = f"{record.client} ({record.replica})"
        flt = Filter(record.resource, record.namespace, record.selector, record.field_selector, record.raw)
        scope = f"{record.resource} ns={record.namespace} sel={record.selector!r}"
        if record.field_selector:
            scope += f" fields={record.field_selector!r}"
        if kind == "consistent":
            must_see = acks.must_see(record.resource, record.t_start)
            if record.rv < must_see:
                report.add(
                    "list",
                    who,
                    f"consistent list of {scope} at {record.rv} misses a write acknowledged at {must_see} "
                    "before the list began",
                )
        elif kind == "Exact" and record.rv != record.rv_param:
            report.add("list", who, f"Exact list of {scope} at {record.rv_param} answered at {record.rv}")
        elif kind == "NotOlderThan" and record.rv < (record.rv_param or 0):
            report.add(
                "list", who, f"list of {scope} not older than {record.rv_param} answered at {record.rv}"
            )
        later = acks.begun_after(record.t_end)
        if record.rv >= later:
            report.add(
                "list",
                who,
                f"list of {scope} at {record.rv} shows a state etcd reached only at {later}, "
                "by a write begun after the list returned",
            )
        if any(rv != record.rv for rv in record.page_rvs):
            report.add("list", who, f"paged list of {scope}: pages at {record.page_rvs}, not one snapshot")
        if record.rv > truth.last_rev:
            report.add("list", who, f"list at {record.rv} is beyond the recorded history ({truth.last_rev})")
            continue
        want = truth.list_at(flt, record.rv)
        if record.count is not None and record.count != len(want):
            report.add(
                "list",
                who,
                f"Range of {scope} at {record.rv} counts {record.count} keys; etcd had {len(want)}",
            )
        got: dict[str, tuple[int, str | None, str | None]] = {}
        for key, rv, token, *rest in record.items:
            if key in got:
                report.add("list", who, f"list of {scope} at {record.rv} has {key} twice")
            got[key] = (rv, token, rest[0] if rest else None)
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        wrong = sorted(
            k
            for k in set(got) & set(want)
            if got[k][:2] != (want[k].mod_revision, want[k].token)
            or (got[k][2] is not None and got[k][2] != (want[k].raw if record.raw else want[k].digest))
        )
        if missing or extra or wrong:
            report.add(
                "list",
                who,
                f"list of {scope} at {record.rv} differs from etcd's state there: "
                f"missing {missing[:3]}, extra {extra[:3]}, stale {wrong[:3]}"
                + (f" (got {got[wrong[0]]}, want {want[wrong[0]]})" if wrong else ""),
            )


def _check_gets(history: History, truth: Truth, acks: _Acks, report: Report) -> None:
    """A GET answers the object's state (or its absence) at a revision the request allows: from
    what it asked for (consistent: every acknowledged write; N: N) up to before any write begun
    after it returned."""
    for record in history.gets:
        report.gets_checked += 1
        who = f"{record.client} ({record.replica})"
        lo = acks.must_see(record.resource, record.t_start) if record.rv_param is None else record.rv_param
        hi = min(acks.begun_after(record.t_end) - 1, truth.last_rev)
        revs, states = truth.timeline.get(record.key, ([], []))
        allowed: list[State | None] = []
        i = max(0, bisect.bisect_right(revs, lo) - 1)
        if not revs or revs[0] > lo:
            allowed.append(None)
        while i < len(revs) and revs[i] <= hi:
            allowed.append(states[i])
            i += 1
        found = record.found
        ok = any(
            (state is None and found is None)
            or (
                state is not None
                and found is not None
                and (found[0], found[1]) == (state.mod_revision, state.token)
                and (found[2] is None or found[2] == state.digest)
            )
            for state in allowed
        )
        if not ok:
            what = "404" if found is None else f"{record.key}@{found[0]} (token {found[1]!r})"
            states_seen = [None if s is None else (s.mod_revision, s.token) for s in allowed]
            report.add(
                "get",
                who,
                f"GET {record.key} (resourceVersion {record.rv_param}) answered {what}; etcd's states "
                f"between {lo} and {hi}: {states_seen[:4]}",
            )


def _check_truth(history: History, truth: Truth, report: Report) -> None:
    for write in history.writes:
        if write.rev > truth.last_rev:
            report.add(
                "truth",
                write.via,
                f"acknowledged write {write.op} {write.key}@{write.rev} is beyond "
                f"the recorded history ({truth.last_rev})",
            )
            continue
        recorded = truth.events.get((write.rev, write.key))
        want_kind = "PUT" if write.op == "put" else "DELETE"
        if (
            recorded is None
            or recorded[0] != want_kind
            or (want_kind == "PUT" and recorded[1] != write.token)
        ):
            report.add(
                "truth",
                write.via,
                f"acknowledged write {write.op} {write.key}@{write.rev} (content {write.token!r}) is not "
                f"in etcd's recorded history (recorded: {recorded})",
            )
    if history.final_state is not None:
        final: dict[str, State] = {}
        for key, rev, value, *meta in history.final_state:
            short = truth.short_key(key)
            state = _state(value, rev, (meta[0], meta[1]) if meta else None)
            if short is not None and state is not None:
                final[short] = state
        replayed = {k: v for k, v in truth.final.items()}
        if history.final_rev != truth.last_rev:
            replayed = {}
            for key in truth.timeline:
                state = truth.state_at(key, history.final_rev)
                if state is not None:
                    replayed[key] = state
        # etcd's create revisions and versions are compared when the final state was read with them.
        replayed = {
            k: v if k not in final or final[k].raw is not None else dataclasses.replace(v, raw=None)
            for k, v in replayed.items()
        }
        if final != replayed:
            diff = sorted(set(final) ^ set(replayed)) or sorted(
                k for k in final if final[k] != replayed.get(k)
            )
            report.add(
                "truth",
                "recorder",
                f"the recorded history does not replay to etcd's state at {history.final_rev}: {diff[:5]}",
            )


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _inside(t: float, windows: Sequence[tuple[float, float]]) -> bool:
    return any(a <= t <= b for a, b in windows)


def _owed_between(truth: Truth, flt: Filter, t0: float, t1: float) -> int:
    """How many changes of ``flt`` were committed between ``t0`` and ``t1``."""
    _, expected = truth.expected(flt)
    return sum(1 for e in expected if (t := truth.commit_time(e.rev)) is not None and t0 <= t <= t1)


def _check_slow(
    history: History,
    truth: Truth,
    report: Report,
    *,
    bounds: Bounds,
    latency_bound: float,
    latency_factor: float,
) -> None:
    # A watcher that stops reading is ended once its buffer overflows, which takes more changes than
    # its socket, the handler's batch in hand and the buffer hold: the driver aims at three buffers'
    # worth during each episode (see soak.py). An episode that a fault left with fewer changes than
    # that (no quorum silences the writers) may rightly end without a cut-off: it is not judged.
    need = 3 * int(history.settings.get("watcher_buffer", 0))
    filters = {w.name: w.filter for w in history.watchers}
    for episode in history.slow_episodes:
        if episode.t_end and not episode.ended_by_server:
            flt = filters.get(episode.watcher)
            if (
                flt is not None
                and truth.timed
                and _owed_between(truth, flt, episode.t_begin, episode.t_end) < need
            ):
                report.slow_unjudged += 1
                continue
            report.add(
                "slow",
                episode.watcher,
                f"stopped reading from {episode.t_begin:.1f} to {episode.t_end:.1f} s and was not cut off "
                f"({episode.events_after_resume} events delivered after it resumed)",
            )
    # Fast watchers' write -> receive latency, inside slow episodes vs outside; writes that a fault
    # could have delayed (one began before they were due) are left out.
    ack_time = {(w.rev, w.key): w.t_ack for w in history.writes}
    slow_windows = [(e.t_begin, e.t_end or math.inf) for e in history.slow_episodes]
    during: list[float] = []
    calm: list[float] = []
    for watcher in history.watchers:
        if watcher.slow:
            continue
        faults = _windows(history, watcher)
        for segment in watcher.segments:
            for event, t in zip(segment.events, segment.recv_times, strict=False):
                acked = ack_time.get((event.rev, event.key))
                if acked is None or _explained(acked, acked + bounds.delivery, faults):
                    continue
                latency = max(0.0, t - acked)
                (during if _inside(acked, slow_windows) else calm).append(latency)
    report.latency_p99_slow = _percentile(during, 0.99)
    report.latency_p99_calm = _percentile(calm, 0.99)
    report.latency_samples = (len(during), len(calm))
    if report.latency_p99_slow is not None and report.latency_p99_calm is not None:
        bound = max(latency_bound, latency_factor * report.latency_p99_calm)
        if report.latency_p99_slow > bound:
            report.add(
                "latency",
                "fast watchers",
                f"p99 write->receive latency during slow-watcher episodes {report.latency_p99_slow:.3f} s "
                f"exceeds the bound {bound:.3f} s (outside them: {report.latency_p99_calm:.3f} s)",
            )


def check(
    history: History,
    *,
    namespaced: Mapping[str, bool],
    latency_bound: float = 2.0,
    latency_factor: float = 4.0,
    bounds: Bounds | None = None,
) -> Report:
    """Check ``history``; ``namespaced`` maps each resource (plural) to whether it is namespaced."""
    bounds = bounds or Bounds()
    report = Report()
    truth = Truth(history, namespaced)
    acks = _Acks(history, truth.namespaced)
    _check_truth(history, truth, report)
    _check_watchers(history, truth, acks, bounds, report)
    _check_liveness(history, truth, bounds, report)
    _check_errors(history, truth, bounds, report)
    _check_forced_relists(history, bounds, report)
    _check_lists(history, truth, acks, report)
    _check_gets(history, truth, acks, report)
    _check_rvs(history, report)
    _check_slow(
        history, truth, report, bounds=bounds, latency_bound=latency_bound, latency_factor=latency_factor
    )
    return report


def iter_events(history: History) -> Iterator[tuple[WatcherRecord, Segment, int]]:
    """(watcher, segment, index) of every received event: handy for planting bugs."""
    for watcher in history.watchers:
        for segment in watcher.segments:
            for i in range(len(segment.events)):
                yield watcher, segment, i


def count_delivered(watchers: Iterable[WatcherRecord]) -> int:
    return sum(len(s.events) for w in watchers for s in w.segments)
