"""Field errors worded as k8s.io/apimachinery words them (``field.Error``, ``errors.Aggregate``,
``apierrors.NewInvalid``), without a server."""

from __future__ import annotations

from watchcache.errors import FieldError, InvalidError, go_quote


def test_values_are_quoted_as_go_quotes_them() -> None:
    """Strings as Go's %q: printable characters kept, escapes for quotes, controls and others."""
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("wéb ✓") == '"wéb ✓"'
    assert go_quote("a\nb\tc\x00\x7f") == '"a\\nb\\tc\\x00\\x7f"'
    assert go_quote("\u00a0\u200b") == '"\\u00a0\\u200b"'
    assert go_quote("\U000e0001") == '"\\U000e0001"'


def test_bodies_show_the_value_only_where_kube_does() -> None:
    """Invalid and unsupported values are shown; required, forbidden and too long are not."""
    assert str(FieldError.invalid("metadata.name", "A", "bad")) == 'metadata.name: Invalid value: "A": bad'
    assert FieldError.invalid("spec.n", 3, "odd").body() == "Invalid value: 3: odd"
    assert FieldError.invalid("spec.on", True, "no").body() == "Invalid value: true: no"
    assert (
        FieldError.invalid("spec.m", {"a": "<b>"}, "no").body()
        == 'Invalid value: {"a":"\\u003cb\\u003e"}: no'
    )
    assert FieldError.required("metadata.namespace").body() == "Required value"
    assert FieldError.too_long("metadata.annotations", 262144).body() == (
        "Too long: may not be more than 262144 bytes"
    )
    assert FieldError.not_supported("includeObject", "X", ["None", "Object"]).body() == (
        'Unsupported value: "X": supported values: "None", "Object"'
    )


def test_invalid_error_aggregates_as_kube_apiserver() -> None:
    """One error as it is; several in brackets, duplicates once; details carry kind, group, name and
    one cause per error (duplicates too, as kube-apiserver sends them)."""
    one = FieldError.required("metadata.name", "name or generateName is required")
    other = FieldError.invalid("metadata.labels", "-x", "bad key")
    err = InvalidError.of([one], kind="Flunder", group="wardle.example.com", name="")
    assert err.message == (
        'Flunder.wardle.example.com "" is invalid: '
        "metadata.name: Required value: name or generateName is required"
    )
    err = InvalidError.of([one, other, other], kind="Thing", group="", name="a\nb")
    assert err.message == (
        'Thing "a\\nb" is invalid: [metadata.name: Required value: name or generateName is required, '
        'metadata.labels: Invalid value: "-x": bad key]'
    )
    assert err.details == {
        "name": "a\nb",
        "group": "",
        "kind": "Thing",
        "causes": [one.cause(), other.cause(), other.cause()],
    }


def test_an_error_without_its_object_is_completed_once() -> None:
    """A check that does not know the object raises the field errors alone; about() names it, and
    leaves an error that names its object already as it is."""
    bare = InvalidError.of([FieldError.invalid("metadata.name", "A", "bad")])
    assert bare.message == 'metadata.name: Invalid value: "A": bad'
    named = bare.about(kind="Flunder", group="wardle.example.com", name="A")
    assert (
        named.message == 'Flunder.wardle.example.com "A" is invalid: metadata.name: Invalid value: "A": bad'
    )
    assert named.about(kind="Other", group="x", name="y") is named
