"""The etcd key layout: validation of names, key building, key parsing and etcd ranges."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchcache.errors import BadRequestError, InvalidError
from watchcache.keys import KeyLayout, prefix_range_end, validate_name, validate_namespace

NAMESPACED = KeyLayout(prefix="/registry", group="wardle.example.com", resource="flunders", namespaced=True)
CLUSTER = KeyLayout(prefix="/registry", group="wardle.example.com", resource="fischers", namespaced=False)

# Written independently of the implementation's patterns, and bounded to stay within the limits.
VALID_NAMES = st.from_regex(
    r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?){0,5}",
    fullmatch=True,
)
VALID_NAMESPACES = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)


@pytest.mark.parametrize("name", ["a", "foo", "foo-bar", "foo.bar", "0", "a" * 253, "a-1.b-2"])
def test_valid_names(name: str) -> None:
    """DNS-1123 subdomains up to 253 characters are valid names."""
    validate_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "a/b",
        "/",
        "a%2Fb",
        "a\x00b",
        "Foo",
        "foo_bar",
        "-foo",
        "foo-",
        "foo..bar",
        "foo.-bar",
        ".foo",
        "foo.",
        "föo",
        "foo\n",
        "a" * 254,
    ],
)
def test_invalid_names(name: str) -> None:
    """Anything but a DNS-1123 subdomain of at most 253 characters raises InvalidError (422)."""
    with pytest.raises(InvalidError) as caught:
        validate_name(name)
    assert caught.value.code == 422
    assert caught.value.message.startswith("metadata.name: ")
    assert caught.value.details is not None
    assert caught.value.details["causes"][0]["field"] == "metadata.name"


def test_invalid_name_message_is_kubernetes_like() -> None:
    """The message names the field, the value and the rule, as kube-apiserver does."""
    with pytest.raises(InvalidError) as caught:
        validate_name("Foo_")
    assert caught.value.message == (
        'metadata.name: Invalid value: "Foo_": a lowercase RFC 1123 subdomain must consist of '
        "lower case alphanumeric characters, '-' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    )
    with pytest.raises(InvalidError, match="no more than 253 characters"):
        validate_name("a" * 254)


@pytest.mark.parametrize("namespace", ["default", "kube-system", "a", "0", "a" * 63])
def test_valid_namespaces(namespace: str) -> None:
    """DNS-1123 labels up to 63 characters are valid namespaces."""
    validate_namespace(namespace)


@pytest.mark.parametrize(
    "namespace", ["", ".", "..", "a.b", "a/b", "Default", "-a", "a-", "a_b", "a\x00", "a" * 64]
)
def test_invalid_namespaces(namespace: str) -> None:
    """Anything but a DNS-1123 label of at most 63 characters raises InvalidError."""
    with pytest.raises(InvalidError) as caught:
        validate_namespace(namespace)
    assert caught.value.message.startswith("metadata.namespace: ")
    assert caught.value.details is not None
    assert caught.value.details["causes"][0]["field"] == "metadata.namespace"


def test_invalid_namespace_message_is_kubernetes_like() -> None:
    """The message gives the RFC 1123 label rule."""
    with pytest.raises(InvalidError, match="a lowercase RFC 1123 label must consist of"):
        validate_namespace("a_b")
    with pytest.raises(InvalidError, match="must not contain dots"):
        validate_namespace("a.b")
    with pytest.raises(InvalidError, match="no more than 63 characters"):
        validate_namespace("a" * 64)


def test_layout_keys() -> None:
    """Prefixes, the progress key and object keys follow the SPEC's layout."""
    assert NAMESPACED.resource_prefix == b"/registry/wardle.example.com/flunders/"
    assert NAMESPACED.progress_key == b"/registry/wardle.example.com/flunders"
    assert NAMESPACED.object_key("default", "foo") == (b"/registry/wardle.example.com/flunders/default/foo")
    assert CLUSTER.object_key(None, "foo") == b"/registry/wardle.example.com/fischers/foo"
    assert CLUSTER.object_key("", "foo") == b"/registry/wardle.example.com/fischers/foo"


def test_core_group_has_no_group_segment() -> None:
    """The core group "" gives `{prefix}/{resource}`, as Kubernetes core resources do."""
    core = KeyLayout(prefix="/registry", group="", resource="configmaps", namespaced=True)
    assert core.progress_key == b"/registry/configmaps"
    assert core.object_key("default", "x") == b"/registry/configmaps/default/x"
    assert core.parse_key(b"/registry/configmaps/default/x") == ("default", "x")


def test_ranges() -> None:
    """The watch range spans the progress key and every object key; list ranges every object or
    one namespace's."""
    assert NAMESPACED.watch_range() == (
        b"/registry/wardle.example.com/flunders",
        b"/registry/wardle.example.com/flunders0",
    )
    assert NAMESPACED.list_range() == (
        b"/registry/wardle.example.com/flunders/",
        b"/registry/wardle.example.com/flunders0",
    )
    assert NAMESPACED.list_range("") == NAMESPACED.list_range()
    assert NAMESPACED.list_range("default") == (
        b"/registry/wardle.example.com/flunders/default/",
        b"/registry/wardle.example.com/flunders/default0",
    )
    assert CLUSTER.list_range() == (
        b"/registry/wardle.example.com/fischers/",
        b"/registry/wardle.example.com/fischers0",
    )
    start, end = NAMESPACED.watch_range()
    key = NAMESPACED.object_key("zzz", "zzz")
    assert start <= NAMESPACED.progress_key < end
    assert start <= key < end


def test_list_range_validates_namespace() -> None:
    """A namespace on a cluster-scoped layout is a bad request; an invalid one is invalid."""
    with pytest.raises(BadRequestError, match="cluster-scoped"):
        CLUSTER.list_range("default")
    with pytest.raises(InvalidError):
        NAMESPACED.list_range("a/b")


def test_object_key_scope_errors() -> None:
    """A namespaced layout needs a namespace; a cluster-scoped one refuses one."""
    with pytest.raises(BadRequestError, match="namespace is required"):
        NAMESPACED.object_key(None, "foo")
    with pytest.raises(BadRequestError, match="namespace is required"):
        NAMESPACED.object_key("", "foo")
    with pytest.raises(BadRequestError, match="cluster-scoped"):
        CLUSTER.object_key("default", "foo")


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../x", "a%2Fb", "%2F", "a\x00", "Foo", "a" * 254, ""])
def test_object_key_rejects_bad_names(name: str) -> None:
    """Names that could escape the resource or are not DNS subdomains never become keys."""
    with pytest.raises(InvalidError):
        NAMESPACED.object_key("default", name)
    with pytest.raises(InvalidError):
        CLUSTER.object_key(None, name)


@pytest.mark.parametrize("namespace", ["..", ".", "a/b", "%2F", "a\x00", "Default", "a" * 64])
def test_object_key_rejects_bad_namespaces(namespace: str) -> None:
    """Invalid namespaces never become key segments."""
    with pytest.raises(InvalidError):
        NAMESPACED.object_key(namespace, "foo")


def test_parse_key_round_trip() -> None:
    """parse_key inverts object_key: (namespace, name), with "" for cluster-scoped objects."""
    assert NAMESPACED.parse_key(NAMESPACED.object_key("ns", "a.b")) == ("ns", "a.b")
    assert CLUSTER.parse_key(CLUSTER.object_key(None, "a.b")) == ("", "a.b")


@pytest.mark.parametrize(
    "key",
    [
        b"/registry/wardle.example.com/flunders",  # the progress key
        b"/registry/wardle.example.com/flunders/",
        b"/registry/wardle.example.com/flunders/ns",
        b"/registry/wardle.example.com/flunders/ns/",
        b"/registry/wardle.example.com/flunders//foo",
        b"/registry/wardle.example.com/flunders/ns/foo/bar",
        b"/registry/wardle.example.com/flunders-old/ns/foo",  # inside the watch range
        b"/registry/wardle.example.com/flunders.v2/ns/foo",
        b"/registry/wardle.example.com/flundersx/ns/foo",
        b"/registry/other.example.com/flunders/ns/foo",
        b"/registry/wardle.example.com/flunders/ns/\xff",
        b"/registry/wardle.example.com/flunders/\xc3/foo",
        b"",
    ],
)
def test_parse_key_rejects_other_keys(key: bytes) -> None:
    """Anything but an object key of this resource, with the right depth, parses to None."""
    assert NAMESPACED.parse_key(key) is None


def test_parse_key_cluster_scoped_rejects_depth() -> None:
    """A cluster-scoped layout accepts exactly one segment after its prefix."""
    assert CLUSTER.parse_key(b"/registry/wardle.example.com/fischers/ns/foo") is None
    assert CLUSTER.parse_key(b"/registry/wardle.example.com/fischers") is None
    assert CLUSTER.parse_key(b"/registry/wardle.example.com/fischers/") is None


def test_parse_key_reads_foreign_names() -> None:
    """Keys written by other tools parse even when their names are not DNS subdomains."""
    key = "/registry/wardle.example.com/flunders/NS/Föö_bar".encode()
    assert NAMESPACED.parse_key(key) == ("NS", "Föö_bar")


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (b"abc", b"abd"),
        (b"/registry/x/", b"/registry/x0"),
        (b"a\xff", b"b"),
        (b"a\xfe\xff\xff", b"a\xff"),
        (b"\xff", b"\0"),
        (b"\xff\xff", b"\0"),
        (b"", b"\0"),
        (b"\x00", b"\x01"),
    ],
)
def test_prefix_range_end(prefix: bytes, expected: bytes) -> None:
    """The range end increments the last byte below 0xff and drops the 0xff bytes after it."""
    assert prefix_range_end(prefix) == expected


@pytest.mark.parametrize(
    ("prefix", "group", "resource"),
    [
        ("registry", "g.io", "r"),
        ("/registry/", "g.io", "r"),
        ("/", "g.io", "r"),
        ("", "g.io", "r"),
        ("/a//b", "g.io", "r"),
        ("/a\x00", "g.io", "r"),
        ("/registry", "G.io", "r"),
        ("/registry", "g/io", "r"),
        ("/registry", "g.io", "r.s"),
        ("/registry", "g.io", "R"),
        ("/registry", "g.io", ""),
        ("/registry", "g.io", "a" * 64),
    ],
)
def test_layout_rejects_bad_configuration(prefix: str, group: str, resource: str) -> None:
    """A malformed prefix, group or resource is a configuration error (ValueError)."""
    with pytest.raises(ValueError):
        KeyLayout(prefix=prefix, group=group, resource=resource, namespaced=True)


@settings(database=None)
@given(VALID_NAMESPACES, VALID_NAMES)
def test_object_key_round_trips(namespace: str, name: str) -> None:
    """For every valid namespace and name, parse_key(object_key(...)) gives them back."""
    assert NAMESPACED.parse_key(NAMESPACED.object_key(namespace, name)) == (namespace, name)
    assert CLUSTER.parse_key(CLUSTER.object_key(None, name)) == ("", name)


@settings(database=None, max_examples=300)
@given(
    st.one_of(st.none(), st.text(), VALID_NAMESPACES),
    st.one_of(st.text(), st.text(alphabet="a./%2F\x00-"), VALID_NAMES),
)
def test_object_key_never_escapes(namespace: str | None, name: str) -> None:
    """Any namespace and name either raise InvalidError/BadRequestError or give a key of this
    resource at the expected depth."""
    for layout in (NAMESPACED, CLUSTER):
        try:
            key = layout.object_key(namespace, name)
        except (InvalidError, BadRequestError):
            continue
        assert key.startswith(layout.resource_prefix)
        assert layout.parse_key(key) == (namespace or "", name)
