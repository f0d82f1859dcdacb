"""The fault soak (benchmarks/soak.py --short) and its checker.

The short soak runs once per session, in a subprocess, against its own 3-member etcd cluster and two
``watchcache serve`` replicas, and must report zero violations with every fault kind injected. The
checker tests plant one bug at a time — in a small hand-made history (fast, no I/O) and in the soak's
own recorded history — and expect the checker to flag exactly that kind of bug.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import soak  # noqa: E402
from soak_checker import (  # noqa: E402
    Event,
    History,
    ListRecord,
    Segment,
    SlowEpisode,
    WatcherRecord,
    WriteRecord,
    check,
)

FAULT_KINDS = {
    "kill-9-leader+restart",
    "sigstop/sigcont-member",
    "restart-all-members",
    "compact",
    "restart-watchcache-replica",
    "big-object-burst",
    "no-quorum-window",
    "slow-watcher-episode",
    "half-open-clients",
}

P = "/registry/wardle.example.com"
NAMESPACED = {"flunders": True, "fischers": False}


# -- a small hand-made history ---------------------------------------------------------------------


def _value(name: str, labels: dict[str, str], token: str) -> str:
    return json.dumps(
        {"metadata": {"name": name, "namespace": "ns0", "labels": labels}, "spec": {"token": token}}
    )


def small_history() -> History:
    """Four writes to two objects; one watcher of everything, one of ``app=a``; one list; all correct."""
    truth: list[tuple[int, str, str, str | None]] = [
        (11, "PUT", f"{P}/flunders/ns0/a", _value("a", {"app": "a"}, "t1")),
        (12, "PUT", f"{P}/flunders/ns0/b", _value("b", {"app": "b"}, "t2")),
        (13, "PUT", f"{P}/flunders", ""),  # a progress key: not an object
        (14, "PUT", f"{P}/flunders/ns0/a", _value("a", {"app": "b"}, "t3")),  # leaves app=a
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
                Event(11, "ADDED", "flunders/ns0/a", "t1"),
                Event(12, "ADDED", "flunders/ns0/b", "t2"),
                Event(14, "MODIFIED", "flunders/ns0/a", "t3"),
                Event(15, "DELETED", "flunders/ns0/b"),
            ],
            end="closed",
            recv_times=[1.2, 1.3, 1.6, 1.8],
        )
    ]
    app_a = WatcherRecord("watcher-app-a", "flunders", "ns0", "app=a", False)
    app_a.observed = [("list", 10), ("event", 11), ("event", 14), ("bookmark", 15)]
    app_a.segments = [
        Segment(
            "b",
            10,
            [Event(11, "ADDED", "flunders/ns0/a", "t1"), Event(14, "DELETED", "flunders/ns0/a")],
            bookmarks=[15],
            end="closed",
            recv_times=[1.2, 1.6],
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
    final = [(f"{P}/flunders/ns0/a", 14, _value("a", {"app": "b"}, "t3"))]
    return History(
        truth=truth,
        initial=[],
        start_rev=10,
        final_state=final,
        final_rev=15,
        prefix=P,
        writes=writes,
        watchers=[every, app_a],
        lists=[listed],
        slow_episodes=[SlowEpisode("watcher-slow", 1.0, 2.0, True, 0)],
    )


def kinds(history: History) -> dict[str, int]:
    return check(history, namespaced=NAMESPACED).by_kind()


def test_small_history_is_clean() -> None:
    """The hand-made history, selector transitions included, has no violation."""
    assert kinds(small_history()) == {}


def test_dropped_event_is_caught() -> None:
    """A watcher that misses one event in the middle of a segment is a watch violation."""
    history = small_history()
    del history.watchers[0].segments[0].events[1]
    assert kinds(history) == {"watch": 1}


def test_dropped_last_event_before_a_bookmark_is_caught() -> None:
    """A bookmark claims everything before it was delivered: a missing last event is a loss."""
    history = small_history()
    history.watchers[1].segments[0].events.pop()
    assert kinds(history) == {"watch": 1}


def test_duplicated_event_is_caught() -> None:
    history = small_history()
    events = history.watchers[0].segments[0].events
    events.insert(2, events[1])
    assert kinds(history) == {"watch": 1}


def test_reordered_events_are_caught() -> None:
    history = small_history()
    events = history.watchers[0].segments[0].events
    events[0], events[1] = events[1], events[0]
    assert kinds(history) == {"watch": 1}


def test_wrong_selector_transition_is_caught() -> None:
    """An object leaving the selector must arrive as DELETED, not MODIFIED."""
    history = small_history()
    history.watchers[1].segments[0].events[1] = Event(14, "MODIFIED", "flunders/ns0/a", "t3")
    assert kinds(history) == {"watch": 1}


def test_stale_content_is_caught() -> None:
    history = small_history()
    history.watchers[0].segments[0].events[2] = Event(14, "MODIFIED", "flunders/ns0/a", "t1")
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


def test_resource_version_going_backwards_is_caught() -> None:
    history = small_history()
    history.watchers[0].observed.insert(3, ("list", 11))
    assert kinds(history) == {"rv": 1}


def test_slow_watcher_not_cut_off_is_caught() -> None:
    history = small_history()
    history.slow_episodes[0].ended_by_server = False
    assert kinds(history) == {"slow": 1}


def test_acknowledged_write_missing_from_etcd_history_is_caught() -> None:
    """The truth cross-check: a write acknowledged at a revision etcd's history does not have."""
    history = small_history()
    history.writes.append(WriteRecord(1.0, 1.1, 13, "flunders", "flunders/ns0/c", "put", "t9", "w"))
    assert kinds(history) == {"truth": 1}


def test_history_round_trips_through_json() -> None:
    history = small_history()
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
    """Every fault kind is injected at least once, and nothing is lost, repeated or inconsistent."""
    summary, _ = short_soak
    assert set(summary["faults"]) >= FAULT_KINDS, summary["faults"]
    assert summary["violation_examples"] == []
    assert summary["violations"] == 0
    assert summary["writes_acknowledged"] > 300
    assert summary["events_delivered"] > 1000
    assert summary["slow_episodes"] > 0
    assert summary["slow_cut_off"] == summary["slow_episodes"]
    assert summary["no_quorum"]["rv0_served"] == summary["no_quorum"]["rv0_total"] > 0


@pytest.mark.timeout(330)
@pytest.mark.parametrize("bug", soak.PLANTS)
def test_planted_bug_in_the_soak_history_is_caught(short_soak: tuple[dict[str, Any], Path], bug: str) -> None:
    """The soak's own recorded history, with one bug planted, is flagged (and is clean without it)."""
    _, out = short_soak
    recorded = History.from_json((out / "history.json").read_text())
    planted = copy.deepcopy(recorded)
    what = soak.plant(planted, bug, seed=7)
    report = check(planted, namespaced=soak.NAMESPACED)
    assert check(recorded, namespaced=soak.NAMESPACED).violations == []
    expected = {
        "drop": ("watch", "lost"),
        "duplicate": ("watch", "repeated"),
        "reorder": ("watch", "reordered"),
        "list-item": ("list", "missing"),
        "page-rv": ("list", "not one snapshot"),
        "rv-backwards": ("rv", "went backwards"),
    }
    kind, words = expected[bug]
    assert [v.kind for v in report.violations] == [kind], (what, report.violations)
    assert words in report.violations[0].detail, (what, report.violations[0].detail)
