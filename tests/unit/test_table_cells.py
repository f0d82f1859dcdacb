"""Table cells, printer columns and their JSONPath, without a server: what kube-apiserver's table
convertors and client-go's JSONPath make of the same objects, and the configuration's checks."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from watchcache.api.jsonpath import MISSING, JSONPath
from watchcache.api.spec import PrinterColumn, ResourceSpec
from watchcache.api.table import TableConvertor, go_float, human_duration
from watchcache.config import ConfigError, parse_config

NOW = datetime.datetime(2026, 1, 10, 12, 0, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("path", "obj", "found"),
    [
        (".spec.size", {"spec": {"size": 3}}, 3),
        (".spec.size", {"spec": None}, MISSING),
        (".spec.size", {"spec": {"size": None}}, None),
        (".spec", {"spec": [1]}, [1]),
        (".a[0].b", {"a": [{"b": 1}, {"b": 2}]}, 1),
        (".a[-1].b", {"a": [{"b": 1}, {"b": 2}]}, 2),
        (".a[2].b", {"a": [{"b": 1}, {"b": 2}]}, MISSING),
        (".a[*].b", {"a": [{"c": 1}, {"b": 2}, {"b": 3}]}, 2),
        (".a[*].b[*].c", {"a": [{"b": [{}]}, {"b": [{"x": 1}, {"c": 4}]}]}, 4),
        (".a[*]", {"a": {"b": 1}}, MISSING),
        (".a.b", {"a": [{"b": 1}]}, MISSING),
        (".labels.app\\.kubernetes\\.io/name", {"labels": {"app.kubernetes.io/name": "web"}}, "web"),
        (".labels['app']", {"labels": {"app": "web"}}, "web"),
        (".labels['a.b']", {"labels": {"a": {"b": 1}}}, 1),
    ],
)
def test_jsonpath_finds_the_first_value_as_client_go(path: str, obj: dict[str, Any], found: Any) -> None:
    """Fields, indexes (from the end too), [*] (the first element that has the rest), ['key'] (dots
    splitting it, as client-go reads it) and escaped dots; a path leading nowhere finds nothing, a
    JSON null is found."""
    assert JSONPath.parse(path).first(obj) == found


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("spec.size", "starting with ."),
        (".a..b", "recursive descent"),
        (".a[?(@.b=='c')].d", "not supported"),
        (".a[0:2]", "not supported"),
        (".a[0,1]", "not supported"),
        (".a[", "unterminated"),
        (".*", "wildcard"),
        (".a b", "unexpected"),
        (".a" * 40, "at most 32 steps"),
        ("." + "a" * 600, "at most 512 characters"),
    ],
)
def test_jsonpath_refuses_what_it_does_not_serve(path: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        JSONPath.parse(path)


def test_cells_as_kube_apiserver_makes_them() -> None:
    """integer/number/boolean cells only from values of that type (integers truncated, whole numbers
    without a fraction), string cells from anything as kubectl's JSONPath prints it, date cells as
    ages; null where there is nothing to show."""
    columns = tuple(
        PrinterColumn(name, kind, path)
        for name, kind, path in [
            ("I", "integer", ".i"),
            ("N", "number", ".n"),
            ("B", "boolean", ".b"),
            ("S", "string", ".s"),
            ("D", "date", ".d"),
        ]
    )
    convertor = TableConvertor(ResourceSpec("g.example.com", "things", "Thing", printer_columns=columns))

    def cells(**values: Any) -> list[Any]:
        return convertor.cells({"metadata": {"name": "x"}, **values}, NOW)[1:]

    assert cells(i=-2.9, n=3, b=True, s="text", d="2026-01-10T11:55:00Z") == [-2, 3, True, "text", "5m"]
    assert cells(i=True, n="3", b="true", s=None, d=5) == [None, None, None, "<no value>", None]
    assert cells() == [None, None, None, None, None]
    assert cells(n=2.5, s=1.5e-7, d="") == [None, 2.5, None, "1.5e-07", "<unknown>"]
    shown = '{"a":true,"b":[1,"\\u003c"]}'
    assert cells(s={"b": [1.0, "<"], "a": True}, d="yesterday") == [None, None, None, shown, "<invalid>"]
    assert cells(s=False, d="2026-01-10T13:00:00+01:00") == [None, None, None, "false", "0s"]


def test_default_columns_are_name_and_created_at() -> None:
    """Without printer columns: Name and Created At, the time in RFC 3339 UTC (zero when absent)."""
    convertor = TableConvertor(ResourceSpec("g.example.com", "things", "Thing"))
    assert [c["name"] for c in convertor.definitions] == ["Name", "Created At"]
    meta = {"name": "x", "creationTimestamp": "2026-01-10T13:00:00.5+01:00"}
    assert convertor.cells({"metadata": meta}, NOW) == ["x", "2026-01-10T12:00:00Z"]
    assert convertor.cells({"metadata": {}}, NOW) == ["", "0001-01-01T00:00:00Z"]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "<invalid>"),
        (-1.5, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60, "3h1m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (50 * 3600, "2d2h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (731 * 86400, "2y1d"),
        (8 * 365 * 86400, "8y"),
    ],
)
def test_ages_as_kubectl_shows_them(seconds: float, shown: str) -> None:
    assert human_duration(seconds) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [(1e6, "1e+06"), (123456.0, "123456"), (1.5, "1.5"), (0.0001, "0.0001"), (1e-5, "1e-05"), (-0.0, "-0")],
)
def test_floats_print_as_go_prints_them(value: float, shown: str) -> None:
    assert go_float(value) == shown


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("{name: A, type: integer}", "'jsonPath' is required"),
        ("{name: A, type: text, jsonPath: .a}", "type: must be one of boolean,date,integer,number,string"),
        ("{name: A, type: string, jsonPath: .a, format: name}", "format: must be one of byte,date"),
        ("{name: A, type: string, jsonPath: .a, priority: -1}", "priority: must be a non-negative integer"),
        ("{name: A, type: string, jsonPath: .a, priority: yes}", "'priority' must be an integer"),
        ("{name: '', type: string, jsonPath: .a}", "name: Required value"),
        ("{name: A, type: string, jsonPath: '.a[?(@.b)]'}", "jsonPath: [?(@.b)] is not supported"),
        ("{name: A, type: string, jsonPath: .a, width: 3}", "unknown field(s): width"),
        ("[A]", "want a mapping"),
    ],
)
def test_bad_printer_columns_are_config_errors(column: str, message: str) -> None:
    """A column kube-apiserver would refuse in a CRD stops the configuration with one line naming it."""
    resource = "{group: g.example.com, versions: [v1], resource: things, kind: Thing, printerColumns: [%s]}"
    text = "resources:\n  - " + resource % column + "\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert "resources[0].printerColumns[0]: " in str(caught.value)
    assert message in str(caught.value)
