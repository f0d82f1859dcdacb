"""PATCH semantics as pure logic: RFC 6902 JSON patch and RFC 7386 merge patch, and the bounds that
keep a small patch from doing unbounded work (size, depth, operations)."""

from __future__ import annotations

import copy
import time
from typing import Any

import orjson
import pytest
from support.patches import doubling_patch

from watchcache.api.patch import JSON_PATCH, MERGE_PATCH, PatchLimits, json_patch, merge_patch, parse_patch
from watchcache.errors import BadRequestError, InvalidError, RequestEntityTooLargeError

LIMITS = PatchLimits(max_bytes=100_000, max_depth=20)
DOC: dict[str, Any] = {"metadata": {"name": "a"}, "spec": {"list": [1, 2, 3], "map": {"k": "v"}}}


def apply(ops: list[dict[str, Any]], doc: dict[str, Any] | None = None, limits: PatchLimits = LIMITS) -> Any:
    return json_patch(ops, limits)(copy.deepcopy(DOC if doc is None else doc))


@pytest.mark.parametrize(
    ("ops", "want"),
    [
        ([{"op": "add", "path": "/spec/new", "value": 1}], {"new": 1}),
        ([{"op": "add", "path": "/spec/list/1", "value": 9}], {"list": [1, 9, 2, 3]}),
        ([{"op": "add", "path": "/spec/list/-", "value": 4}], {"list": [1, 2, 3, 4]}),
        ([{"op": "remove", "path": "/spec/list/0"}], {"list": [2, 3]}),
        ([{"op": "replace", "path": "/spec/map/k", "value": "w"}], {"map": {"k": "w"}}),
        ([{"op": "move", "from": "/spec/map/k", "path": "/spec/moved"}], {"map": {}, "moved": "v"}),
        ([{"op": "copy", "from": "/spec/map", "path": "/spec/copied"}], {"copied": {"k": "v"}}),
        ([{"op": "test", "path": "/spec/list", "value": [1, 2, 3]}], {}),
        ([{"op": "add", "path": "/spec/a~1b~0c", "value": True}], {"a/b~c": True}),
    ],
)
def test_json_patch_operations_follow_rfc_6902(ops: list[dict[str, Any]], want: dict[str, Any]) -> None:
    """Each operation does what RFC 6902 says, on the fields it names and nothing else."""
    spec = apply(ops)["spec"]
    for key, value in want.items():
        assert spec[key] == value
    if "list" not in want:
        assert spec["list"] == [1, 2, 3]


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "remove", "path": "/spec/absent"}],
        [{"op": "replace", "path": "/spec/absent", "value": 1}],
        [{"op": "add", "path": "/spec/list/9", "value": 1}],
        [{"op": "add", "path": "/spec/list/01", "value": 1}],
        [{"op": "add", "path": "/absent/deeper", "value": 1}],
        [{"op": "test", "path": "/spec/list/0", "value": True}],  # true is not the number 1
        [{"op": "test", "path": "/spec/map/k", "value": "other"}],
        [{"op": "move", "from": "/spec", "path": "/spec/inside"}],
        [{"op": "remove", "path": ""}],
        [{"op": "replace", "path": "", "value": [1]}],  # the result must stay an object
    ],
)
def test_operations_that_cannot_apply_are_422(ops: list[dict[str, Any]]) -> None:
    """A patch that does not apply to this object is 422 Invalid, naming the failed operation."""
    with pytest.raises(InvalidError, match=r"operation 0|not a JSON object"):
        apply(ops)


@pytest.mark.parametrize(
    "patch",
    [
        {"op": "add"},
        [{"op": "bogus", "path": "/a"}],
        [{"op": "append", "path": "/a", "value": "x"}],  # a library extension, not RFC 6902
        [{"op": "add", "path": "a", "value": 1}],
        [{"op": "add", "path": "/a"}],
        [{"op": "copy", "path": "/a"}],
        ["add"],
    ],
)
def test_malformed_json_patches_are_400(patch: Any) -> None:
    """A body that is not an RFC 6902 operation list is refused before anything is read: 400."""
    with pytest.raises(BadRequestError):
        json_patch(patch, LIMITS)


def test_doubling_patch_is_413_before_it_grows() -> None:
    """Twenty rounds of copy double an object a million-fold: the patch fails (413) once its result
    would pass the limit, having built no more than about that much."""
    with pytest.raises(RequestEntityTooLargeError, match="larger than 100000 bytes"):
        apply(doubling_patch(20))
    # Below the limit the same shape applies, and its size is what the bound tracked.
    result = apply(doubling_patch(5))
    assert len(orjson.dumps(result)) < LIMITS.max_bytes


def test_copy_then_remove_loops_are_bounded_by_what_copy_duplicated() -> None:
    """Copying a large value and removing the copy, over and over, keeps the object small but would
    do unbounded work: what copy duplicates is counted and never refunded (413)."""
    big = {"spec": {"big": "x" * 30_000}}
    ops = [{"op": "copy", "from": "/spec/big", "path": "/spec/c"}, {"op": "remove", "path": "/spec/c"}] * 10
    with pytest.raises(RequestEntityTooLargeError):
        apply(ops, big)


def test_copy_into_own_child_is_422_at_the_depth_limit() -> None:
    """Copying a node into its own child deepens the object each time: 422 at the depth limit, never
    a RecursionError."""
    ops = [{"op": "add", "path": "/spec/a", "value": {}}]
    ops += [{"op": "copy", "from": "/spec", "path": "/spec/a/b"} for _ in range(100)]
    with pytest.raises(InvalidError, match="deeper than 20"):
        apply(ops)


def test_too_many_operations_is_413() -> None:
    """More than max_operations (kube-apiserver's 10,000) is 413 before any is applied."""
    ops = [{"op": "test", "path": "/metadata/name", "value": "a"}] * 11
    with pytest.raises(RequestEntityTooLargeError, match="maximum operations"):
        json_patch(ops, PatchLimits(max_operations=10))


def test_bounded_patches_fail_fast_at_the_default_limits() -> None:
    """The attacks of the hardening issue against the default 1.5 MiB limit fail in well under a
    second of CPU (an upper bound to catch a regression to the unbounded behaviour, not a benchmark)."""
    limits = PatchLimits()
    started = time.process_time()
    with pytest.raises(RequestEntityTooLargeError):
        json_patch(doubling_patch(25), limits)(copy.deepcopy(DOC))
    with pytest.raises(InvalidError):
        json_patch(
            [{"op": "add", "path": "/spec/a", "value": {}}]
            + [{"op": "copy", "from": "/spec", "path": "/spec/a/b"} for _ in range(200)],
            limits,
        )(copy.deepcopy(DOC))
    assert time.process_time() - started < 5.0


def test_merge_patch_follows_rfc_7386_and_its_bounds() -> None:
    """A merge patch merges objects, replaces the rest, deletes with null; a result over the size
    or depth limit is refused."""
    merged = merge_patch({"spec": {"map": {"k": None, "n": 1}, "list": [9]}}, LIMITS)(copy.deepcopy(DOC))
    assert merged["spec"] == {"list": [9], "map": {"n": 1}}
    with pytest.raises(RequestEntityTooLargeError):
        merge_patch({"spec": {"big": "x" * 200_000}}, LIMITS)(copy.deepcopy(DOC))
    deep: Any = 1
    for _ in range(25):
        deep = {"d": deep}
    with pytest.raises(InvalidError, match="deeper"):
        merge_patch({"spec": deep}, LIMITS)(copy.deepcopy(DOC))
    with pytest.raises(BadRequestError):
        merge_patch([1], LIMITS)


def test_parse_patch_refuses_other_patch_types() -> None:
    """Only the two RFC patch types are served (strategic merge and apply patches are not)."""
    assert parse_patch(MERGE_PATCH, {}, LIMITS)(copy.deepcopy(DOC)) == DOC
    assert parse_patch(JSON_PATCH, [], LIMITS)(copy.deepcopy(DOC)) == DOC
    with pytest.raises(Exception, match="not supported") as caught:
        parse_patch("application/strategic-merge-patch+json", {}, LIMITS)
    assert getattr(caught.value, "code", None) == 415
