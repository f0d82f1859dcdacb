"""Objects as ``meta.k8s.io`` Tables, what ``kubectl get`` prints: kube-apiserver's table convertors.

Without printer columns a resource gets kube-apiserver's default convertor (``rest/table.go``): Name and
Created At (RFC 3339). With them, the custom resource convertor (apiextensions-apiserver
``tableconvertor``): Name, then one cell per column, made from the first value the column's JSONPath
finds — ``integer``, ``number`` and ``boolean`` cells only from JSON values of that type, ``string``
cells from any value as kubectl's JSONPath prints it, ``date`` cells as the age of an RFC 3339 time
(``5m``, ``3d4h``, as kubectl shows ages); a cell with nothing to show is null. A row's ``object`` is
per ``includeObject`` (kube's ``TableOptions``): ``Metadata`` (the default: a ``PartialObjectMetadata``),
``Object`` (the object itself) or ``None``.

The wire encoding is the front's; this module makes cells, column definitions and row objects.
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from ..errors import BadRequestError, FieldError
from .jsonpath import MISSING
from .spec import PrinterColumn, ResourceSpec

__all__ = [
    "TABLE_GROUP",
    "TABLE_VERSIONS",
    "IncludeObject",
    "TableConvertor",
    "TableOptions",
    "go_float",
    "human_duration",
    "partial_object_metadata",
]

TABLE_GROUP = "meta.k8s.io"
TABLE_VERSIONS = ("v1", "v1beta1")
"""The versions of ``meta.k8s.io`` a Table is served in."""

IncludeObject = Literal["None", "Metadata", "Object"]

# ObjectMeta's own descriptions (k8s.io/apimachinery's SwaggerDoc), which kube's columns carry.
_NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources "
    "may allow a client to request the generation of an appropriate name automatically. Name is primarily "
    "intended for creation idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_CREATED_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is "
    "not guaranteed to be set in happens-before order across separate operations. Clients may not set "
    "this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. "
    "Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True, slots=True)
class TableOptions:
    """What a Table request asks for besides the rows (kube's ``metav1.TableOptions``)."""

    include_object: IncludeObject = "Metadata"

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> TableOptions:
        """From ``includeObject`` (400 for another value, worded as kube-apiserver words it)."""
        value = query.get("includeObject", "")
        if value == "":
            return cls()
        for include in get_args(IncludeObject):
            if value == include:
                return cls(include)
        problem = FieldError.invalid("includeObject", value, "must be 'Metadata', 'Object', 'None', or empty")
        raise BadRequestError(f"Unable to convert to Table as requested: {problem}")


def _column(
    name: str, type_: str, description: str, *, format_: str = "", priority: int = 0
) -> dict[str, Any]:
    return {"name": name, "type": type_, "format": format_, "description": description, "priority": priority}


class TableConvertor:
    """One resource's Table columns (see the module docstring), made once."""

    def __init__(self, spec: ResourceSpec) -> None:
        self._columns: tuple[PrinterColumn, ...] = spec.printer_columns
        definitions = [_column("Name", "string", _NAME_DESCRIPTION, format_="name")]
        if not self._columns:
            definitions.append(_column("Created At", "date", _CREATED_DESCRIPTION))
        for column in self._columns:
            description = column.description or (
                f"Custom resource definition column (in JSONPath format): {column.json_path}"
            )
            shown = _column(
                column.name, column.type, description, format_=column.format, priority=column.priority
            )
            definitions.append(shown)
        #: The ``columnDefinitions`` of every Table of this resource.
        self.definitions: list[dict[str, Any]] = definitions

    def cells(self, obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
        """One row's cells for ``obj`` (parsed JSON); ``now`` is when ages are measured from."""
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
        name = meta.get("name")
        cells: list[Any] = [name if isinstance(name, str) else ""]
        if not self._columns:
            created = _parse_time(meta.get("creationTimestamp"))
            cells.append(_ZERO_TIME if created is None else created.strftime("%Y-%m-%dT%H:%M:%SZ"))
            return cells
        for column in self._columns:
            value = column.path.first(obj)
            cells.append(None if value is MISSING else _cell(column.type, value, now))
        return cells


def partial_object_metadata(obj: Mapping[str, Any], api_version: str) -> dict[str, Any]:
    """A row's object for ``includeObject=Metadata``: the object's metadata alone."""
    meta = obj.get("metadata")
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": api_version,
        "metadata": meta if isinstance(meta, dict) else {},
    }


def _cell(kind: str, value: Any, now: datetime.datetime) -> Any:
    """kube's ``cellForJSONValue``, and kubectl's JSONPath printing for string columns."""
    if kind == "string":
        return _text(value)
    if value is None:
        return None
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "integer":
        return _int64(value) if is_number else None
    if kind == "number":
        return _json_float(float(value)) if is_number else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    # date
    if not isinstance(value, str):
        return None
    if value in ("", "null"):
        return "<unknown>"
    when = _parse_time(value)
    return "<invalid>" if when is None else human_duration((now - when).total_seconds())


def _int64(value: int | float) -> int:
    if isinstance(value, float):
        if math.isnan(value):
            return 0
        value = int(max(min(value, 2.0**63 - 1024), -(2.0**63)))  # Go truncates toward zero
    return max(min(value, 2**63 - 1), -(2**63))


def _json_float(value: float) -> float | int:
    """A float as Go's encoding/json writes it: without ``.0`` when whole."""
    return int(value) if value.is_integer() and abs(value) < 1e21 else value


def _text(value: Any) -> str:
    """A value as client-go's JSONPath prints it: strings bare, other scalars as Go's ``%v``, lists and
    maps as Go's JSON (keys sorted)."""
    if value is None:
        return "<no value>"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    return _go_json(value)


def _go_json(value: Any) -> str:
    text = json.dumps(_go_numbers(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _go_numbers(value: Any) -> Any:
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, list):
        return [_go_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _go_numbers(v) for k, v in value.items()}
    return value


def go_float(value: float) -> str:
    """``value`` as Go's ``%v`` writes a float64: the shortest digits that read back, with an
    exponent below 1e-4 and from 1e6 on (``1e+06``, ``1.5e-05``), as ``strconv``'s ``'g'``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign, digits, exponent = decimal.Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    shown = "".join(map(str, digits))
    point = len(shown) + exponent  # where the decimal point goes, counted from the first digit
    minus = "-" if sign else ""
    power = point - 1
    if power < -4 or power >= 6:
        mantissa = shown[0] + ("." + shown[1:] if len(shown) > 1 else "")
        return f"{minus}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{shown}"
    if point >= len(shown):
        return f"{minus}{shown}{'0' * (point - len(shown))}"
    return f"{minus}{shown[:point]}.{shown[point:]}"


def _parse_time(value: Any) -> datetime.datetime | None:
    """An RFC 3339 time (as Kubernetes' ``metav1.Time`` reads one) in UTC, or None."""
    if not isinstance(value, str) or not 20 <= len(value) <= 40 or value[10] not in "Tt":
        return None
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return when.astimezone(datetime.UTC)


def human_duration(seconds: float) -> str:
    """An age as kubectl shows it (k8s.io/apimachinery ``duration.HumanDuration``): about two or three
    significant figures, ``45s``, ``5m3s``, ``2h10m``, ``3d4h``, ``2y30d``."""
    whole = int(seconds)
    if whole < -1:  # a little clock skew is "now"
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 60 * 2:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        return _two(minutes, "m", whole % 60, "s")
    if minutes < 60 * 3:
        return f"{minutes}m"
    return _hours(whole // 3600, minutes)


def _hours(hours: int, minutes: int) -> str:
    days = hours // 24
    if hours < 8:
        return _two(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return _two(days, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return _two(days // 365, "y", days % 365, "d")
    return f"{days // 365}y"


def _two(big: int, big_unit: str, small: int, small_unit: str) -> str:
    return f"{big}{big_unit}{small}{small_unit}" if small else f"{big}{big_unit}"
