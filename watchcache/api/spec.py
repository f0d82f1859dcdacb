"""What a served resource is: a plain value type, shared by the configuration and every layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from .jsonpath import JSONPath

__all__ = [
    "DEFAULT_MAX_OBJECT_BYTES",
    "PRINTER_COLUMN_FORMATS",
    "PrinterColumn",
    "PrinterColumnType",
    "ResourceSpec",
]

DEFAULT_MAX_OBJECT_BYTES = 1_572_864
"""Largest object written (etcd's default request limit, 1.5 MiB), unless a writer's quota says otherwise."""


PrinterColumnType = Literal["integer", "number", "string", "boolean", "date"]

PRINTER_COLUMN_FORMATS = frozenset(
    {"int32", "int64", "float", "double", "byte", "date", "date-time", "password"}
)
"""The formats a CRD's printer column may name (kubectl applies none of them; ``name`` is the Name
column's own)."""

MAX_PRINTER_COLUMNS = 32


@dataclass(frozen=True, slots=True)
class PrinterColumn:
    """One column of ``kubectl get`` besides Name, as a CRD's ``additionalPrinterColumns`` entry:
    validated as kube-apiserver validates those (``ValueError`` saying which rule fails)."""

    name: str
    """The column's header, e.g. ``Size`` (kubectl prints it upper-cased)."""
    type: PrinterColumnType
    """How cells are made: ``integer``, ``number``, ``boolean`` from JSON values of that type, ``string``
    from any value (as kubectl's JSONPath prints it), ``date`` an RFC 3339 time shown as an age."""
    json_path: str
    """Where the value is in the object, e.g. ``.spec.size`` (see :mod:`.jsonpath`)."""
    description: str = ""
    """Shown by ``kubectl explain``-like clients; default: the path."""
    priority: int = 0
    """0: always shown; more: only with ``kubectl get -o wide``."""
    format: str = ""
    """An OpenAPI format hint (one of :data:`PRINTER_COLUMN_FORMATS`), passed on to clients."""
    path: JSONPath = field(init=False, repr=False, compare=False)
    """The compiled :attr:`json_path`."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name: Required value")
        if self.type not in get_args(PrinterColumnType):
            raise ValueError(f"type: must be one of {','.join(sorted(get_args(PrinterColumnType)))}")
        if self.format and self.format not in PRINTER_COLUMN_FORMATS:
            raise ValueError(f"format: must be one of {','.join(sorted(PRINTER_COLUMN_FORMATS))}")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int) or self.priority < 0:
            raise ValueError("priority: must be a non-negative integer")
        try:
            path = JSONPath.parse(self.json_path)
        except ValueError as err:
            raise ValueError(f"jsonPath: {err}") from None
        object.__setattr__(self, "path", path)


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """A served resource: all ``versions`` share one storage (no conversion)."""

    group: str
    """API group, e.g. ``wardle.example.com``."""
    resource: str
    """Plural, lower-case resource name, e.g. ``flunders``."""
    kind: str
    """Kind of one object, e.g. ``Flunder``; lists are ``{kind}List``."""
    namespaced: bool = True
    """Whether objects live in namespaces."""
    versions: tuple[str, ...] = ("v1",)
    """Served versions; the first is the default of the Python API."""
    printer_columns: tuple[PrinterColumn, ...] = ()
    """``kubectl get``'s columns besides Name (none: Name and Created At, as kube-apiserver's default)."""

    def __post_init__(self) -> None:
        if len(self.printer_columns) > MAX_PRINTER_COLUMNS:
            raise ValueError(f"printerColumns: at most {MAX_PRINTER_COLUMNS} columns")

    @property
    def qualified(self) -> str:
        """``resource.group``, as Kubernetes names a resource in messages."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version
