"""The fault soak (benchmarks/soak.py --short) and its checker.

The short soak runs once per session, in a subprocess, against its own 3-member etcd cluster and two
``watchcache serve`` replicas, and must report zero violations with every fault kind injected. The
checker tests plant one bug at a time — in a small hand-made history (fast, no I/O) and in the soak's
own recorded history — and expect the checker to flag exactly that kind of bug.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import mutants  # noqa: E402
import soak  # noqa: E402
from soak_checker import (  # noqa: E402
    MISSING_PREV_KV,
    Event,
    GetRecord,
    History,
    ListRecord,
    RequestRecord,
    Segment,
    SlowEpisode,
    WatcherRecord,
    WriteRecord,
    check,
    digest,
    kv_digest,
)

FAULT_KINDS = {
    "kill-9-leader+restart",
    "sigstop/sigcont-member",
    "restart-all-members",
    "compact",
    "compact-past-stopped-replica",
    "restart-watchcache-replica",
    "big-object-burst",
    "no-quorum-window",
    "slow-watcher-episode",
    "half-open-clients",
}

P = "/registry/wardle.example.com"
NAMESPACED = {"flunders": True, "fischers": False}


# -- a small hand-made history ---------------------------------------------------------------------


def _obj(name: str, labels: dict[str, str], token: str) -> dict[str, Any]:
    return {
        "apiVersion": "wardle.example.com/v1alpha1",
        "kind": "Flunder",
        "metadata": {"name": name, "namespace": "ns0", "labels": labels},
        "spec": {"token": token},
    }


def _value(name: str, labels: dict[str, str], token: str) -> str:
    return json.dumps(_obj(name, labels, token))


A1 = _obj("a", {"app": "a"}, "t1")
B2 = _obj("b", {"app": "b"}, "t2")
A3 = _obj("a", {"app": "b"}, "t3")


def _event(rev: int, kind: str, name: str, obj: dict[str, Any]) -> Event:
    """An event as the soak's client records it: the whole object's fingerprint included."""
    return Event(rev, kind, f"flunders/ns0/{name}", obj["spec"]["token"], digest(obj, obj["apiVersion"]))


def small_history() -> History:
    """Four writes to two objects; one watcher of everything, one of ``app=a`` (with a bookmark); one
    list; all correct and on time (every time below is in seconds on the soak's clock)."""
    truth: list[tuple[int, str, str, str | None]] = [
        (11, "PUT", f"{P}/flunders/ns0/a", json.dumps(A1)),
        (12, "PUT", f"{P}/flunders/ns0/b", json.dumps(B2)),
        (13, "PUT", f"{P}/flunders", ""),  # a progress key: not an object
        (14, "PUT", f"{P}/flunders/ns0/a", json.dumps(A3)),  # leaves app=a
        (15, "DELETE", f"{P}/flunders/ns0/b", None),
    ]
    writes = [
        WriteRecord(1.0, 1.1, 11, "flunders", "flunders/ns0/a", "put", "t1", "w"),
        WriteRecord(1.2, 1.3, 12, "flunders", "flunders/ns0/b", "put", "t2", "w"),
        WriteRecord(1.4, 1.5, 14, "flunders", "flunders/ns0/a", "put", "t3", "w"),
        WriteRecord(1.6, 1.7, 15, "flunders", "flunders/ns0/b", "delete", None, "w"),
    ]
    every = WatcherRecord("watcher-all", "flunders", None, None, False)
    every.observed = [("list", 10), ("event", 11), ("event", 12), ("event", 14), ("event", 15)]
    every.segments = [
        Segment(
            "a",
            10,
            [
                _event(11, "ADDED", "a", A1),
                _event(12, "ADDED", "b", B2),
                _event(14, "MODIFIED", "a", A3),
                _event(15, "DELETED", "b", B2),
            ],
            end="closed",
            recv_times=[1.2, 1.3, 1.6, 1.8],
            t_start=0.9,
            t_open=0.95,
            t_end=2.0,
        )
    ]
    app_a = WatcherRecord("watcher-app-a", "flunders", "ns0", "app=a", False)
    app_a.observed = [("list", 10), ("event", 11), ("event", 14), ("bookmark", 15)]
    app_a.segments = [
        Segment(
            "b",
            10,
            # Leaving the selector: DELETED with the content it last matched with.
            [_event(11, "ADDED", "a", A1), _event(14, "DELETED", "a", A1)],
            bookmarks=[15],
            end="closed",
            recv_times=[1.2, 1.6],
            bookmark_at=[2],
            bookmark_times=[1.9],
            t_start=0.9,
            t_open=0.95,
            t_end=2.0,
        )
    ]
    listed = ListRecord(
        "reader-0",
        "a",
        "flunders",
        None,
        None,
        1.55,
        1.58,
        14,
        [("flunders/ns0/a", 14, "t3"), ("flunders/ns0/b", 12, "t2")],
        [14],
    )
    final = [(f"{P}/flunders/ns0/a", 14, json.dumps(A3))]
    return History(
        truth=truth,
        truth_times=[1.05, 1.25, 1.35, 1.45, 1.65],
        initial=[],
        start_rev=10,
        final_state=final,
        final_rev=15,
        prefix=P,
        writes=writes,
        watchers=[every, app_a],
        lists=[listed],
        slow_episodes=[SlowEpisode("watcher-slow", 1.0, 2.0, True, 0)],
        loads=[("a", 0.0, 0.5), ("b", 0.0, 0.5)],
        t_stop=3.0,
    )


def kinds(history: History) -> dict[str, int]:
    return check(history, namespaced=NAMESPACED).by_kind()


def details(history: History) -> list[str]:
    return [f"{v.kind}: {v.detail}" for v in check(history, namespaced=NAMESPACED).violations]


def test_small_history_is_clean() -> None:
    """The hand-made history, selector transitions included, has no violation."""
    assert details(small_history()) == []


def test_dropped_event_is_caught() -> None:
    """A watcher that misses one event in the middle of a segment is a watch violation."""
    history = small_history()
    del history.watchers[0].segments[0].events[1]
    del history.watchers[0].segments[0].recv_times[1]
    assert kinds(history) == {"watch": 1}


def test_dropped_last_event_before_a_bookmark_is_caught() -> None:
    """A bookmark claims everything before it was delivered: a missing last event is a loss."""
    history = small_history()
    segment = history.watchers[1].segments[0]
    segment.events.pop()
    segment.recv_times.pop()
    segment.bookmark_at = [1]
    assert kinds(history) == {"watch": 1}


def test_duplicated_event_is_caught() -> None:
    history = small_history()
    segment = history.watchers[0].segments[0]
    segment.events.insert(2, segment.events[1])
    segment.recv_times.insert(2, segment.recv_times[1])
    assert kinds(history) == {"watch": 1}


def test_reordered_events_are_caught() -> None:
    history = small_history()
    events = history.watchers[0].segments[0].events
    events[0], events[1] = events[1], events[0]
    assert kinds(history) == {"watch": 1}


def test_wrong_selector_transition_is_caught() -> None:
    """An object leaving the selector must arrive as DELETED, not MODIFIED."""
    history = small_history()
    history.watchers[1].segments[0].events[1] = _event(14, "MODIFIED", "a", A3)
    assert kinds(history) == {"watch": 1}


def test_stale_content_is_caught() -> None:
    history = small_history()
    history.watchers[0].segments[0].events[2] = _event(14, "MODIFIED", "a", A1)
    assert kinds(history) == {"watch": 1}


def test_the_whole_object_is_compared() -> None:
    """Same token, another field differs (or the apiVersion of another path): not etcd's object."""
    history = small_history()
    changed = {**A3, "spec": {**A3["spec"], "extra": 1}}
    history.watchers[0].segments[0].events[2] = _event(14, "MODIFIED", "a", changed)
    assert kinds(history) == {"watch": 1}
    history = small_history()
    wrong_version = Event(14, "MODIFIED", "flunders/ns0/a", "t3", digest(A3, "wardle.example.com/v1beta1"))
    history.watchers[0].segments[0].events[2] = wrong_version
    assert kinds(history) == {"watch": 1}


def test_list_missing_an_acknowledged_write_is_caught() -> None:
    """A consistent list begun after the write at 14 was acknowledged, served at 12."""
    history = small_history()
    record = history.lists[0]
    record.rv = record.page_rvs[0] = 12
    record.items = [("flunders/ns0/a", 11, "t1"), ("flunders/ns0/b", 12, "t2")]
    assert kinds(history) == {"list": 1}


def test_list_from_the_future_is_caught() -> None:
    """A list that returned before the delete at 15 began cannot show its state."""
    history = small_history()
    record = history.lists[0]
    record.rv = record.page_rvs[0] = 15
    record.items = [("flunders/ns0/a", 14, "t3")]
    assert kinds(history) == {"list": 1}


def test_list_content_differing_from_etcd_is_caught() -> None:
    history = small_history()
    history.lists[0].items.pop()
    assert kinds(history) == {"list": 1}


def test_paged_list_of_two_snapshots_is_caught() -> None:
    history = small_history()
    history.lists[0].page_rvs = [14, 15]
    assert kinds(history) == {"list": 1}


def test_exact_and_not_older_than_lists_are_checked() -> None:
    """Exact: at the revision asked for; NotOlderThan: at or after it; both etcd's state there."""
    history = small_history()
    record = history.lists[0]
    record.rv_param, record.match = 12, "Exact"
    assert kinds(history) == {"list": 1}  # answered at 14
    record.rv = record.page_rvs[0] = 12
    record.items = [("flunders/ns0/a", 11, "t1"), ("flunders/ns0/b", 12, "t2")]
    assert kinds(history) == {}  # an Exact list need not include later acknowledged writes
    record.match = None  # NotOlderThan 12, at 12: fine too
    assert kinds(history) == {}
    record.rv_param = 14
    assert kinds(history) == {"list": 1}


def test_gets_are_checked_like_lists() -> None:
    """A consistent GET must show every acknowledged write; a 404 for an object there is wrong."""
    history = small_history()
    good = GetRecord("reader-1", "a", "flunders", "flunders/ns0/a", 1.55, 1.58, (14, "t3", digest(A3)))
    history.gets = [good]
    assert kinds(history) == {}
    history.gets = [GetRecord("reader-1", "a", "flunders", "flunders/ns0/a", 1.55, 1.58, (11, "t1", None))]
    assert kinds(history) == {"get": 1}  # stale: the write at 14 was acknowledged before
    history.gets = [
        GetRecord("reader-1", "a", "flunders", "flunders/ns0/a", 1.55, 1.58, (11, "t1", None), rv_param=0)
    ]
    assert kinds(history) == {}  # resourceVersion=0: any state, the old one too
    history.gets = [GetRecord("reader-1", "a", "flunders", "flunders/ns0/a", 1.55, 1.58, None)]
    assert kinds(history) == {"get": 1}


def test_resource_version_going_backwards_is_caught() -> None:
    history = small_history()
    history.watchers[0].observed.insert(3, ("list", 11))
    assert kinds(history) == {"rv": 1}


def test_slow_watcher_not_cut_off_is_caught() -> None:
    history = small_history()
    history.slow_episodes[0].ended_by_server = False
    assert kinds(history) == {"slow": 1}


def test_slow_episode_is_judged_only_when_owed_enough_changes_to_overflow() -> None:
    """A slow watcher must be cut off when three buffers' worth of its changes were committed while
    it did not read (the four writes here, with a buffer of one); with fewer (a buffer of two), its
    buffer may never have overflowed, and the episode is not judged."""
    history = small_history()
    history.watchers.append(WatcherRecord("watcher-slow", "flunders", None, None, True))
    history.slow_episodes[0].ended_by_server = False
    history.settings["watcher_buffer"] = 1
    assert kinds(history) == {"slow": 1}
    history.settings["watcher_buffer"] = 2
    report = check(history, namespaced=NAMESPACED)
    assert report.violations == [] and report.slow_unjudged == 1


def test_acknowledged_write_missing_from_etcd_history_is_caught() -> None:
    """The truth cross-check: a write acknowledged at a revision etcd's history does not have."""
    history = small_history()
    history.writes.append(WriteRecord(1.0, 1.1, 13, "flunders", "flunders/ns0/c", "put", "t9", "w"))
    assert kinds(history) == {"truth": 1}


# -- what a client is owed: liveness, errors, 410s, bookmarks ------------------------------------


def test_starved_watcher_is_caught() -> None:
    """Events that arrive only long after they were committed (no fault explains it): late."""
    history = small_history()
    segment = history.watchers[1].segments[0]
    segment.recv_times = [t + 5 for t in segment.recv_times]
    segment.bookmark_times = [t + 5 for t in segment.bookmark_times]
    history.t_stop = 10.0
    assert kinds(history) == {"liveness": 1}
    assert "2 of 2 changes it was owed arrived late" in details(history)[0]


def test_delay_inside_a_fault_window_is_excused_up_to_the_recovery_bound() -> None:
    history = small_history()
    segment = history.watchers[1].segments[0]
    segment.recv_times = [t + 5 for t in segment.recv_times]
    segment.bookmark_times = [t + 5 for t in segment.bookmark_times]
    history.t_stop = 10.0
    history.fault_windows = [(1.0, 3.0, "kill-9-leader+restart")]
    assert kinds(history) == {}  # known at 6.6 s at the latest: within the window's end + 5 s
    history.fault_windows = [(1.0, 1.5, "kill-9-leader+restart")]
    assert kinds(history) == {"liveness": 1}
    # A fault of another replica than the watcher's excuses nothing.
    history.fault_windows = [(1.0, 3.0, "restart-watchcache-replica@a")]
    assert kinds(history) == {"liveness": 1}
    history.fault_windows = [(1.0, 3.0, "restart-watchcache-replica@b")]
    assert kinds(history) == {}


def test_refused_selector_watch_is_caught() -> None:
    """A 500 to a watch is an error, and the watcher it leaves unserved never catches up."""
    history = small_history()
    watcher = history.watchers[1]
    history.requests.append(RequestRecord(watcher.name, "b", "watch", 0.9, 0.95, 500, "InternalError", 10))
    watcher.segments = []
    watcher.observed = [("list", 10)]
    history.lists.append(ListRecord(watcher.name, "b", "flunders", "ns0", "app=a", 0.8, 0.85, 10, [], [10]))
    assert kinds(history) == {"error": 1, "liveness": 1}


def test_errors_need_a_fault_to_explain_them() -> None:
    """503/504/429 and connection errors are fine during a fault (and the recovery after it), not
    outside; a 500 never."""
    history = small_history()
    history.requests = [RequestRecord("reader-0", "a", "list", 1.0, 1.2, 504, "Timeout")]
    assert kinds(history) == {"error": 1}
    history.fault_windows = [(0.5, 0.8, "no-quorum-window")]
    assert kinds(history) == {}
    history.requests.append(RequestRecord("reader-0", "a", "list", 1.0, 1.2, 500, "InternalError"))
    assert kinds(history) == {"error": 1}


def test_every_410_must_be_justified() -> None:
    """A 410 to a client whose revision was neither compacted, nor older than the window, nor older
    than the replica's cache is a violation."""
    history = small_history()
    history.requests = [RequestRecord("watcher-all", "a", "watch", 1.9, 1.95, 410, "Expired", 14)]
    assert kinds(history) == {"error": 1}
    history.compactions = [(1.8, 15)]
    assert kinds(history) == {}  # compacted past 14
    history.compactions = []
    history.settings = {"window": 1}
    history.requests[0].rv = 11  # two changes (14, 15) after 11 by then: older than a window of 1
    assert kinds(history) == {}
    history.loads.append(("a", 1.7, 1.75))  # the replica restarted: its cache began at 15
    history.settings = {}
    assert kinds(history) == {}
    history.loads.pop()
    assert kinds(history) == {"error": 1}


def test_unjustified_410_error_event_is_caught() -> None:
    history = small_history()
    history.watchers[0].segments[0].end = "expired"
    assert kinds(history) == {"error": 1}


def test_error_event_and_dead_client_are_caught() -> None:
    history = small_history()
    history.watchers[0].segments[0].end = "error"
    history.watchers[1].segments[0].end = "malformed"
    history.client_errors = [("watcher-x", "task watcher-x died: KeyError('object')")]
    assert kinds(history) == {"error": 1, "protocol": 1, "client": 1}


def test_truncated_stream_is_caught() -> None:
    """A watcher whose stream stopped half way (and never caught up) did not reach etcd's end."""
    history = small_history()
    segment = history.watchers[0].segments[0]
    del segment.events[2:], segment.recv_times[2:]
    assert kinds(history) == {"liveness": 1}
    assert "never reached etcd's last change for its filter" in details(history)[0]


def test_missing_410_after_a_forced_reload_is_caught() -> None:
    """A watch open while its replica's caches were compacted past and reloaded must end (410), not
    go on from the new state."""
    history = small_history()
    history.compactions = [(1.4, 14)]
    history.forced_relists = [("a", 1.0, 1.5, 14)]
    assert kinds(history) == {"relist": 1}  # watcher-all's stream went on past 14
    segment = history.watchers[0].segments[0]
    del segment.events[2:], segment.recv_times[2:]
    segment.end, segment.t_end = "expired", 1.55  # justified: its revision, 12, was compacted
    history.lists.append(  # ...and it lists again
        ListRecord(
            "watcher-all", "b", "flunders", None, None, 1.6, 1.7, 15, [("flunders/ns0/a", 14, "t3")], [15]
        )
    )
    assert details(history) == []


def test_bookmark_ahead_of_what_was_sent_is_caught() -> None:
    """A bookmark at 14 followed by the event at 14: it claimed what it had not sent."""
    history = small_history()
    segment = history.watchers[1].segments[0]
    segment.bookmarks, segment.bookmark_at, segment.bookmark_times = [14], [1], [1.5]
    assert kinds(history) == {"watch": 1}
    assert "ahead of what the watcher was sent" in details(history)[0]


def test_bookmark_ahead_of_etcd_or_behind_is_caught() -> None:
    history = small_history()
    segment = history.watchers[1].segments[0]
    segment.bookmark_times = [0.3]  # etcd had not reached 15 then (nor soon after)
    assert "ahead of etcd" in " ".join(details(history))
    segment.bookmark_times = [1.9]
    segment.bookmarks = [13]  # after the event at 14 was sent
    assert "behind" in " ".join(details(history))


def test_bookmark_ahead_of_the_recorder_while_it_was_away_is_not_judged() -> None:
    """The recorder lost its stream (an etcd fault) and resumed: what it received when back may have
    been committed any time while it was away, so a bookmark then is not "ahead of etcd" for it. A
    span that does not cover the bookmark changes nothing."""
    history = small_history()
    segment = history.watchers[1].segments[0]
    segment.bookmark_times = [0.3]  # + 1 s of slack: the recorder had seen up to 12 by 1.3 s
    history.recorder_blind = [(0.0, 0.5)]
    assert "ahead of etcd" in " ".join(details(history))
    history.recorder_blind = [(1.0, 1.65)]  # away from 1.0 s; 13 to 15 received at 1.35-1.65 s
    assert details(history) == []


def test_initial_state_watches_are_checked() -> None:
    """sendInitialEvents: ADDEDs of etcd's state at the end bookmark's revision, then changes; a
    resourceVersion=0 watch: the same without a marker."""
    history = small_history()
    initial = WatcherRecord("watcher-initial", "flunders", None, None, False, mode="send-initial")
    initial.segments = [
        Segment(
            "a",
            0,
            [
                _event(11, "ADDED", "a", A1),
                _event(12, "ADDED", "b", B2),
                _event(14, "MODIFIED", "a", A3),
                _event(15, "DELETED", "b", B2),
            ],
            bookmarks=[12],
            bookmark_at=[2],
            bookmark_times=[1.35],
            initial="send-initial",
            initial_end=0,
            recv_times=[1.3, 1.3, 1.6, 1.8],
            end="stopped",
            t_start=1.28,
            t_open=1.29,
            t_end=3.0,
        )
    ]
    rv0 = WatcherRecord("watcher-rv0", "flunders", None, None, False, mode="rv0", bookmarks=False)
    rv0.segments = [
        Segment(
            "b",
            0,
            # The state at 11 or 12 (nothing tells which), then the changes after it.
            [
                _event(11, "ADDED", "a", A1),
                _event(12, "ADDED", "b", B2),
                _event(14, "MODIFIED", "a", A3),
                _event(15, "DELETED", "b", B2),
            ],
            initial="rv0",
            recv_times=[1.15, 1.3, 1.6, 1.8],
            end="stopped",
            t_start=1.12,
            t_open=1.13,
            t_end=3.0,
        )
    ]
    history.watchers += [initial, rv0]
    assert details(history) == []
    report = check(history, namespaced=NAMESPACED)
    assert report.initial_segments == {"send-initial": 1, "rv0": 1}
    initial.segments[0].events.pop(1)  # b is missing from the initial state
    initial.segments[0].recv_times.pop(1)
    initial.segments[0].bookmark_at = [1]
    assert kinds(history) == {"watch": 1}
    rv0.segments[0].events.pop(2)  # a change lost after the initial state
    rv0.segments[0].recv_times.pop(2)
    assert kinds(history) == {"watch": 2}


def test_field_selectors_are_applied() -> None:
    history = small_history()
    one = WatcherRecord("watcher-b", "flunders", None, None, False, field_selector="metadata.name=b")
    one.segments = [
        Segment(
            "a",
            10,
            [_event(12, "ADDED", "b", B2), _event(15, "DELETED", "b", B2)],
            recv_times=[1.3, 1.8],
            end="closed",
            t_start=0.9,
            t_open=0.95,
            t_end=2.0,
        )
    ]
    history.watchers.append(one)
    assert kinds(history) == {}
    one.field_selector = "metadata.name!=b"
    assert kinds(history)["watch"] == 1


def test_every_mutant_can_still_be_planted() -> None:
    """The bugs of docs/soak.md's mutant table still match the code they break exactly once (when
    the code moves, re-plant the mutant in the function the table names)."""
    assert mutants.unplantable() == []


# -- clients of the etcd front -------------------------------------------------------------------------


def _kv(obj: dict[str, Any], create: int, mod: int, version: int) -> str:
    """The fingerprint of the KeyValue etcd holds for ``obj`` (its value as the truth records it)."""
    return kv_digest(json.dumps(obj).encode(), create_revision=create, mod_revision=mod, version=version)


def etcd_history() -> History:
    """The small history with an etcd-front watcher of the flunders prefix (a Range at 10, then a
    watch with prev_kv: two creations, an update, a deletion, a progress notification) and a
    consistent Range at 14 through the front."""
    history = small_history()
    watcher = WatcherRecord("etcd-watcher-0", "flunders", None, None, False, protocol="etcd")
    watcher.observed = [("list", 10), ("event", 11), ("event", 12), ("event", 14), ("event", 15)]
    watcher.observed.append(("bookmark", 15))
    watcher.segments = [
        Segment(
            "a",
            10,
            [
                Event(11, "ADDED", "flunders/ns0/a", "t1", _kv(A1, 11, 11, 1)),
                Event(12, "ADDED", "flunders/ns0/b", "t2", _kv(B2, 12, 12, 1)),
                Event(14, "MODIFIED", "flunders/ns0/a", "t3", _kv(A3, 11, 14, 2), _kv(A1, 11, 11, 1)),
                Event(15, "DELETED", "flunders/ns0/b", "t2", _kv(B2, 12, 12, 1)),
            ],
            bookmarks=[15],
            end="closed",
            recv_times=[1.2, 1.3, 1.6, 1.8],
            bookmark_at=[4],
            bookmark_times=[1.9],
            version="etcd",
            t_start=0.9,
            t_open=0.95,
            t_end=2.0,
        )
    ]
    history.watchers.append(watcher)
    listed = ListRecord("etcd-watcher-0", "a", "flunders", None, None, 0.8, 0.85, 10, [], [10])
    listed.raw, listed.count, listed.version = True, 0, "etcd"
    ranged = ListRecord(
        "etcd-reader-0",
        "b",
        "flunders",
        None,
        None,
        1.55,
        1.58,
        14,
        [("flunders/ns0/a", 14, "t3", _kv(A3, 11, 14, 2)), ("flunders/ns0/b", 12, "t2", _kv(B2, 12, 12, 1))],
        [14],
    )
    ranged.raw, ranged.count, ranged.version = True, 2, "etcd"
    history.lists += [listed, ranged]
    return history


def test_etcd_front_clients_are_judged_on_etcds_terms() -> None:
    """A watch of a key prefix is owed every change of every key in it, each with etcd's exact
    KeyValue and an update's and a deletion's prev_kv; a Range is etcd's state, count included."""
    history = etcd_history()
    assert check(history, namespaced=NAMESPACED).violations == []
    segment = history.watchers[-1].segments[0]
    segment.events[2] = dataclasses.replace(segment.events[2], prev=MISSING_PREV_KV)
    assert kinds(history) == {"watch": 1}
    assert "prev_kv" in details(history)[0]


def test_etcd_event_with_the_wrong_key_value_is_caught() -> None:
    """An update sent as a creation (create_revision its own revision, version 1), and a deletion
    without its prev_kv, are not etcd's events."""
    history = etcd_history()
    segment = history.watchers[-1].segments[0]
    segment.events[2] = Event(14, "ADDED", "flunders/ns0/a", "t3", _kv(A3, 14, 14, 1))
    assert kinds(history) == {"watch": 1}
    history = etcd_history()
    segment = history.watchers[-1].segments[0]
    segment.events[3] = Event(15, "DELETED", "flunders/ns0/b", None, MISSING_PREV_KV)
    assert kinds(history) == {"watch": 1}
    history = etcd_history()
    segment = history.watchers[-1].segments[0]
    segment.events[1] = dataclasses.replace(segment.events[1], digest=_kv(B2, 12, 12, 2))  # its version
    assert kinds(history) == {"watch": 1}


def test_etcd_range_is_checked_with_its_count() -> None:
    history = etcd_history()
    history.lists[-1].count = 3
    assert kinds(history) == {"list": 1}
    assert "counts 3 keys" in details(history)[0]
    history = etcd_history()
    key, rv, token, _ = history.lists[-1].items[0]
    history.lists[-1].items[0] = (key, rv, token, _kv(A3, 14, 14, 1))  # another create revision
    assert kinds(history) == {"list": 1}


def test_etcd_compacted_cancel_must_be_justified_and_progress_never_behind() -> None:
    """A compacted cancel is a 410: justified by a compaction past the watch; a progress
    notification behind an event already sent is a violation."""
    history = etcd_history()
    segment = history.watchers[-1].segments[0]
    segment.end = "expired"
    assert kinds(history) == {"error": 1}
    history.compactions.append((1.95, 16))
    assert kinds(history) == {}
    history = etcd_history()
    history.watchers[-1].segments[0].bookmarks = [14]
    assert kinds(history) == {"watch": 1}
    assert "behind" in details(history)[0]


def test_etcd_watcher_revision_going_backwards_is_caught() -> None:
    """An etcd watcher's observations (its Ranges, events and progress notifications) are its own:
    a revision going backwards among them is caught like a REST watcher's."""
    history = etcd_history()
    history.watchers[-1].observed.insert(3, ("bookmark", 11))
    assert kinds(history) == {"rv": 1}


def test_history_round_trips_through_json() -> None:
    history = etcd_history()
    history.gets.append(GetRecord("reader-1", "a", "flunders", "flunders/ns0/a", 1.55, 1.58, None))
    history.requests.append(RequestRecord("reader-0", "a", "list", 1.0, 1.2, 504, "Timeout"))
    history.forced_relists.append(("a", 1.0, 1.5, 14))
    again = History.from_json(history.to_json())
    assert again == history


# -- the short soak --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_soak(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("soak")
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "soak.py"), "--short", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    summary_file = out / "summary.json"
    assert summary_file.exists(), f"the soak did not finish:\n{result.stdout}\n{result.stderr[-5000:]}"
    return json.loads(summary_file.read_text()), out


@pytest.mark.timeout(330)
def test_short_soak_has_no_violation(short_soak: tuple[dict[str, Any], Path]) -> None:
    """Every fault kind is injected at least once, every path the README claims is exercised, and
    nothing is lost, repeated, inconsistent, late or refused."""
    summary, _ = short_soak
    assert set(summary["faults"]) >= FAULT_KINDS, summary["faults"]
    assert summary["violation_examples"] == []
    assert summary["violations"] == 0
    assert summary["writes_acknowledged"] > 300
    assert summary["events_delivered"] > 1000
    assert summary["slow_episodes"] > 0
    assert summary["slow_cut_off"] > 0
    assert summary["slow_cut_off"] + summary["slow_not_judged"] == summary["slow_episodes"]
    assert summary["no_quorum"]["rv0_served"] == summary["no_quorum"]["rv0_total"] > 0
    assert summary["liveness"]["changes_owed"] > 1000
    assert summary["liveness"]["late"] == 0
    assert summary["bookmarks_checked"] > 0
    assert summary["forced_relist_410s"] > 0
    front = summary["etcd_front"]
    assert front["events_delivered"] > 100 and front["progress_notifications"] > 0, front
    assert front["writes_acknowledged"] > 0 and front["compacted_cancels"] > 0, front
    assert set(front["ranges"]) == {"consistent", "serializable", "revision"}, front


# What each planted bug must be flagged as: (kinds allowed, the kind that must be there, words in it).
PLANTED = {
    "drop": ({"watch"}, "watch", "lost"),
    "duplicate": ({"watch"}, "watch", "repeated"),
    "reorder": ({"watch"}, "watch", "reordered"),
    "list-item": ({"list"}, "list", "missing"),
    "page-rv": ({"list"}, "list", "not one snapshot"),
    "rv-backwards": ({"rv"}, "rv", "went backwards"),
    "starve-namespace": ({"liveness"}, "liveness", "arrived late"),
    "refuse-selector": ({"error", "liveness"}, "error", "answered 500"),
    "truncate-last": ({"liveness"}, "liveness", "never reached"),
    "drop-later-streams": ({"liveness"}, "liveness", "never reached"),
    "no-410-after-relist": ({"relist", "watch"}, "relist", "instead of a 410"),
    "bookmark-ahead": ({"watch"}, "watch", "ahead of what the watcher was sent"),
    "spurious-410": ({"error"}, "error", "not justified"),
    "error-event": ({"error"}, "error", "an ERROR event"),
}


def test_every_plant_has_an_expectation() -> None:
    assert set(PLANTED) == set(soak.PLANTS)


@pytest.mark.timeout(330)
@pytest.mark.parametrize("bug", soak.PLANTS)
def test_planted_bug_in_the_soak_history_is_caught(short_soak: tuple[dict[str, Any], Path], bug: str) -> None:
    """The soak's own recorded history, with one bug planted, is flagged (and is clean without it).
    The first six are one bug in one place (exactly one violation); the others, as the bugs of
    docs/soak.md's mutant table would show in a recording, touch many clients."""
    _, out = short_soak
    recorded = History.from_json((out / "history.json").read_text())
    planted = copy.deepcopy(recorded)
    what = soak.plant(planted, bug, seed=7)
    report = check(planted, namespaced=soak.NAMESPACED)
    assert check(recorded, namespaced=soak.NAMESPACED).violations == []
    allowed, kind, words = PLANTED[bug]
    found = {v.kind for v in report.violations}
    assert kind in found and found <= allowed, (what, report.by_kind(), report.violations[:5])
    assert any(words in v.detail for v in report.violations if v.kind == kind), (what, report.violations[:5])
    if bug in soak.PLANTS[:6]:
        assert len(report.violations) == 1, (what, report.violations)
