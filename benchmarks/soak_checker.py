"""The soak's checker: judges a recorded history against etcd's own history. Pure logic, no I/O.

The ground truth is etcd's history of the resource prefix, recorded by a direct etcd watch that ran for
the whole soak (see ``docs/soak.md``). Everything the clients saw is checked against it:

- ``watch``: each watch *segment* (one HTTP watch from resourceVersion S) received exactly the events
  etcd's history yields for the watcher's filter after S, up to what the segment covered (its last
  event or bookmark): nothing lost, repeated, reordered or invented. Selectors and namespaces are
  applied as Kubernetes does (an object that starts matching is ADDED, one that stops is DELETED).
  A segment may end early (closed stream, 410, cut off); the next one starts where it stopped.
- ``list``: a consistent list is etcd's state at its resourceVersion, that resourceVersion is at or
  after every write acknowledged before the list began, and before every write begun after it
  returned; paged lists are one snapshot (every page has the first page's resourceVersion).
- ``rv``: the resourceVersions one client observes never go backwards (across re-watches, relists,
  replicas).
- ``truth``: every acknowledged write is in the recorded history (cross-checks the recorder), and the
  recorded history replays to the state etcd returned at the end.
- ``slow``: every deliberately slow watcher was cut off; ``latency``: fast watchers were not delayed
  by slow ones beyond a bound.

A history is plain JSON (``History.to_json``), so a run can be re-checked, or mutated to plant a bug.
"""

from __future__ import annotations

import bisect
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "Event",
    "History",
    "ListRecord",
    "Report",
    "Segment",
    "SlowEpisode",
    "Truth",
    "Violation",
    "WatcherRecord",
    "WriteRecord",
    "check",
    "parse_selector",
]

Labels = Mapping[str, str]


# -- label selectors (an independent implementation: the checker must not reuse watchcache's) ------


def parse_selector(text: str | None) -> list[tuple[str, str, frozenset[str]]]:
    """``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``, comma-joined."""
    terms: list[tuple[str, str, frozenset[str]]] = []
    if not text:
        return terms
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
    for raw in parts:
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


# -- the recorded history -------------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    """One object's state in etcd at some revision."""

    mod_revision: int
    labels: Labels
    token: str | None


@dataclass(frozen=True)
class Event:
    """One event a client received (or one the truth says it should have)."""

    rev: int
    type: str
    key: str
    token: str | None = None

    def brief(self) -> str:
        return f"{self.type} {self.key}@{self.rev}"


@dataclass
class Segment:
    """One HTTP watch: from ``start_rev``, what it received, and how it ended."""

    replica: str
    start_rev: int
    events: list[Event] = field(default_factory=list)
    bookmarks: list[int] = field(default_factory=list)
    end: str = "open"
    """``closed`` (the server ended the stream), ``expired`` (a 410 ERROR event), ``error`` (another
    ERROR event), ``reset`` (connection lost), ``stopped`` (the soak ended it)."""
    recv_times: list[float] = field(default_factory=list)
    """Monotonic receive time of each event (same order as ``events``)."""

    def covered(self) -> int:
        """Every event for the filter up to this revision was delivered (if the segment is right)."""
        last = self.events[-1].rev if self.events else self.start_rev
        return max([self.start_rev, last, *self.bookmarks])


@dataclass
class ListRecord:
    """One consistent LIST (all its pages when paged)."""

    client: str
    replica: str
    resource: str
    namespace: str | None
    selector: str | None
    t_start: float
    t_end: float
    rv: int
    items: list[tuple[str, int, str | None]]
    """(key, resourceVersion, token) of each item, in order."""
    page_rvs: list[int] = field(default_factory=list)


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
    ended_by_server: bool
    """Whether the stream the watcher stopped reading was ended by the server (EOF or reset)."""
    events_after_resume: int


@dataclass
class History:
    """Everything the soak recorded; JSON round-trips through :meth:`to_json`/:meth:`from_json`."""

    truth: list[tuple[int, str, str, str | None]]
    """Recorded etcd events: (revision, ``PUT``/``DELETE``, key, value) of the object prefix."""
    initial: list[tuple[str, int, str]]
    """(key, mod_revision, value) of every object when recording began."""
    start_rev: int
    final_state: list[tuple[str, int, str]] | None
    """(key, mod_revision, value) read straight from etcd at ``final_rev`` after the run."""
    final_rev: int
    prefix: str
    writes: list[WriteRecord] = field(default_factory=list)
    watchers: list[WatcherRecord] = field(default_factory=list)
    lists: list[ListRecord] = field(default_factory=list)
    slow_episodes: list[SlowEpisode] = field(default_factory=list)
    fault_windows: list[tuple[float, float, str]] = field(default_factory=list)

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
            **raw,
        )


def _watcher(raw: dict[str, Any], segments: list[Segment]) -> WatcherRecord:
    observed = [(str(a), int(b)) for a, b in raw.pop("observed")]
    return WatcherRecord(**raw, segments=segments, observed=observed)


# -- the truth: etcd's history, per resource ---------------------------------------------------------


def _state(value: str | None, rev: int) -> State | None:
    """The object a value is (None when it is not a JSON object: watchcache does not serve it)."""
    if value is None:
        return None
    try:
        obj = json.loads(value)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    spec = obj.get("spec") or {}
    token = spec.get("token") if isinstance(spec, dict) else None
    return State(rev, dict(labels) if isinstance(labels, dict) else {}, token)


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
        for key, rev, value in history.initial:
            short = self.short_key(key)
            state = _state(value, rev)
            if short is not None and state is not None:
                current[short] = state
                self._at(short, history.start_rev, state)
        last = history.start_rev
        self.events: dict[tuple[int, str], tuple[str, str | None]] = {}
        for rev, kind, key, value in history.truth:
            if rev < last:
                raise ValueError(f"recorded history goes backwards at revision {rev}")
            last = rev
            short = self.short_key(key)
            if short is None:
                continue
            new = _state(value, rev) if kind == "PUT" else None
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
        self._expected: dict[tuple[str, str | None, str | None], tuple[list[int], list[Event]]] = {}

    def _at(self, key: str, rev: int, state: State | None) -> None:
        revs, states = self.timeline.setdefault(key, ([], []))
        revs.append(rev)
        states.append(state)

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

    def state_at(self, key: str, rev: int) -> State | None:
        timeline = self.timeline.get(key)
        if timeline is None:
            return None
        revs, states = timeline
        i = bisect.bisect_right(revs, rev) - 1
        return states[i] if i >= 0 else None

    def list_at(
        self, resource: str, namespace: str | None, selector: str | None, rev: int
    ) -> dict[str, State]:
        """The filter's objects at ``rev``."""
        terms = parse_selector(selector)
        out: dict[str, State] = {}
        for key in self.timeline:
            if self.resource_of(key) != resource:
                continue
            if namespace is not None and self.namespace_of(key) != namespace:
                continue
            state = self.state_at(key, rev)
            if state is not None and _matches(terms, state.labels):
                out[key] = state
        return out

    def expected(
        self, resource: str, namespace: str | None, selector: str | None
    ) -> tuple[list[int], list[Event]]:
        """Every event a watcher of this filter is owed over the whole history (Kubernetes'
        selector transitions), with their revisions for bisecting."""
        cache_key = (resource, namespace, selector)
        cached = self._expected.get(cache_key)
        if cached is not None:
            return cached
        terms = parse_selector(selector)
        events: list[Event] = []
        for change in self.changes.get(resource, []):
            if namespace is not None and self.namespace_of(change.key) != namespace:
                continue
            was = change.prev is not None and _matches(terms, change.prev.labels)
            now = change.new is not None and _matches(terms, change.new.labels)
            if now:
                kind = "MODIFIED" if was else "ADDED"
                events.append(Event(change.rev, kind, change.key, change.new.token if change.new else None))
            elif was:
                events.append(Event(change.rev, "DELETED", change.key, None))
        result = ([e.rev for e in events], events)
        self._expected[cache_key] = result
        return result


# -- the checks --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    kind: str
    """``watch``, ``list``, ``rv``, ``truth``, ``slow`` or ``latency``."""
    who: str
    detail: str


@dataclass
class Report:
    violations: list[Violation] = field(default_factory=list)
    segments_checked: int = 0
    events_checked: int = 0
    lists_checked: int = 0
    expired_segments: int = 0
    latency_p99_slow: float | None = None
    latency_p99_calm: float | None = None
    latency_samples: tuple[int, int] = (0, 0)

    def add(self, kind: str, who: str, detail: str) -> None:
        self.violations.append(Violation(kind, who, detail))

    def by_kind(self) -> dict[str, int]:
        return dict(Counter(v.kind for v in self.violations))


def _compare_events(got: Sequence[Event], want: Sequence[Event]) -> str | None:
    """None if equal, else what is wrong (loss, repetition, reordering or difference)."""
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
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
            return f"event #{i}: {what}: got {g.brief()}, etcd's history says {w.brief()}"
        if w.type != "DELETED" and g.token != w.token:
            return f"event #{i}: {g.brief()} carries content {g.token!r}, etcd's history says {w.token!r}"
    if len(got) > len(want):
        g = got[len(want)]
        what = "repeated" if any((e.rev, e.key) == (g.rev, g.key) for e in want) else "unexpected"
        return f"event #{len(want)}: {what}: got {g.brief()} beyond what etcd's history has"
    if len(got) < len(want):
        missing = want[len(got)].brief()
        return f"event #{len(got)}: lost: {missing} never arrived (covered up to a later revision)"
    return None


def _check_watchers(history: History, truth: Truth, report: Report) -> None:
    for watcher in history.watchers:
        revs, expected = truth.expected(watcher.resource, watcher.namespace, watcher.selector)
        for n, segment in enumerate(watcher.segments):
            report.segments_checked += 1
            report.events_checked += len(segment.events)
            if segment.end == "expired":
                report.expired_segments += 1
            covered = segment.covered()
            if covered > truth.last_rev:
                report.add(
                    "watch",
                    watcher.name,
                    f"segment {n} (from {segment.start_rev} on {segment.replica}) covers revision "
                    f"{covered}, beyond etcd's last recorded revision {truth.last_rev}",
                )
                continue
            lo = bisect.bisect_right(revs, segment.start_rev)
            hi = bisect.bisect_right(revs, covered)
            problem = _compare_events(segment.events, expected[lo:hi])
            if problem is not None:
                report.add(
                    "watch",
                    watcher.name,
                    f"segment {n} (from {segment.start_rev} on {segment.replica}, ended {segment.end}): "
                    + problem,
                )
            for bookmark in segment.bookmarks:
                if bookmark < segment.start_rev:
                    report.add("watch", watcher.name, f"segment {n}: bookmark {bookmark} before its start")


def _check_rvs(history: History, report: Report) -> None:
    clients: dict[str, list[tuple[str, int]]] = {w.name: w.observed for w in history.watchers}
    by_reader: dict[str, list[tuple[str, int]]] = {}
    for record in history.lists:
        if not record.client.startswith("watcher"):
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


def _check_lists(history: History, truth: Truth, report: Report) -> None:
    acked = sorted(history.writes, key=lambda w: w.t_ack)
    ack_times = [w.t_ack for w in acked]
    prefix_max: dict[str, list[int]] = {}
    for resource in truth.namespaced:
        best, running = [], 0
        for w in acked:
            if w.resource == resource:
                running = max(running, w.rev)
            best.append(running)
        prefix_max[resource] = best
    started = sorted(history.writes, key=lambda w: w.t_start)
    start_times = [w.t_start for w in started]
    suffix_min = [math.inf] * (len(started) + 1)
    for i in range(len(started) - 1, -1, -1):
        suffix_min[i] = min(suffix_min[i + 1], started[i].rev)
    for record in history.lists:
        report.lists_checked += 1
        who = f"{record.client} ({record.replica})"
        scope = f"{record.resource} ns={record.namespace} sel={record.selector!r}"
        i = bisect.bisect_left(ack_times, record.t_start)
        must_see = prefix_max[record.resource][i - 1] if i > 0 else 0
        if record.rv < must_see:
            report.add(
                "list",
                who,
                f"consistent list of {scope} at {record.rv} misses a write acknowledged at {must_see} "
                "before the list began",
            )
        j = bisect.bisect_right(start_times, record.t_end)
        later = suffix_min[j]
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
        want = truth.list_at(record.resource, record.namespace, record.selector, record.rv)
        got: dict[str, tuple[int, str | None]] = {}
        for key, rv, token in record.items:
            if key in got:
                report.add("list", who, f"list of {scope} at {record.rv} has {key} twice")
            got[key] = (rv, token)
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        wrong = sorted(k for k in set(got) & set(want) if got[k] != (want[k].mod_revision, want[k].token))
        if missing or extra or wrong:
            report.add(
                "list",
                who,
                f"list of {scope} at {record.rv} differs from etcd's state there: "
                f"missing {missing[:3]}, extra {extra[:3]}, stale {wrong[:3]}"
                + (f" (got {got[wrong[0]]}, want {want[wrong[0]]})" if wrong else ""),
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
        for key, rev, value in history.final_state:
            short = truth.short_key(key)
            state = _state(value, rev)
            if short is not None and state is not None:
                final[short] = state
        replayed = {k: v for k, v in truth.final.items()}
        if history.final_rev != truth.last_rev:
            replayed = {}
            for key in truth.timeline:
                state = truth.state_at(key, history.final_rev)
                if state is not None:
                    replayed[key] = state
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


def _check_slow(history: History, report: Report, *, latency_bound: float, latency_factor: float) -> None:
    for episode in history.slow_episodes:
        if not episode.ended_by_server:
            report.add(
                "slow",
                episode.watcher,
                f"stopped reading from {episode.t_begin:.1f} to {episode.t_end:.1f} s and was not cut off "
                f"({episode.events_after_resume} events delivered after it resumed)",
            )
    # Fast watchers' write -> receive latency, inside slow episodes vs outside, faults excluded.
    ack_time = {(w.rev, w.key): w.t_ack for w in history.writes}
    slow_windows = [(e.t_begin, e.t_end) for e in history.slow_episodes]
    faults = [(a, b) for a, b, _ in history.fault_windows]
    during: list[float] = []
    calm: list[float] = []
    for watcher in history.watchers:
        if watcher.slow:
            continue
        for segment in watcher.segments:
            for event, t in zip(segment.events, segment.recv_times, strict=False):
                acked = ack_time.get((event.rev, event.key))
                if acked is None or _inside(acked, faults):
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
) -> Report:
    """Check ``history``; ``namespaced`` maps each resource (plural) to whether it is namespaced."""
    report = Report()
    truth = Truth(history, namespaced)
    _check_truth(history, truth, report)
    _check_watchers(history, truth, report)
    _check_lists(history, truth, report)
    _check_rvs(history, report)
    _check_slow(history, report, latency_bound=latency_bound, latency_factor=latency_factor)
    return report


def iter_events(history: History) -> Iterator[tuple[WatcherRecord, Segment, int]]:
    """(watcher, segment, index) of every received event: handy for planting bugs."""
    for watcher in history.watchers:
        for segment in watcher.segments:
            for i in range(len(segment.events)):
                yield watcher, segment, i


def count_delivered(watchers: Iterable[WatcherRecord]) -> int:
    return sum(len(s.events) for w in watchers for s in w.segments)
