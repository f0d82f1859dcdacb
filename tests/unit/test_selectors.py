"""Label and field selectors: grammar, Kubernetes matching semantics, errors, canonical form."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchcache.errors import BadRequestError
from watchcache.selectors import (
    EVERYTHING,
    FieldSelector,
    LabelSelector,
    Requirement,
    Selector,
)

LABELS = {"app": "web", "tier": "frontend", "replicas": "3", "empty": ""}


def matches(selector: str, labels: dict[str, str] = LABELS) -> bool:
    return LabelSelector.parse(selector).matches(labels)


@pytest.mark.parametrize("text", ["", "   ", " \t\r\n "])
def test_empty_label_selector_matches_everything(text: str) -> None:
    """Empty or whitespace-only text is the empty selector, which matches any labels."""
    selector = LabelSelector.parse(text)
    assert selector.empty
    assert selector.matches({})
    assert selector.matches(LABELS)
    assert str(selector) == ""


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("app=web", True),
        ("app==web", True),
        ("app=db", False),
        ("missing=web", False),
        ("app!=db", True),
        ("app!=web", False),
        ("app in (db,web)", True),
        ("app in (db,cache)", False),
        ("app notin (db,cache)", True),
        ("app notin (db,web)", False),
        ("replicas>2", True),
        ("replicas>3", False),
        ("replicas<4", True),
        ("replicas<3", False),
        ("app=web,tier=frontend", True),
        ("app=web,tier=backend", False),
        ("empty=", True),
        ("empty", True),
        ("empty in (a,)", True),
        ("empty in (a)", False),
    ],
)
def test_label_operators(selector: str, expected: bool) -> None:
    """Each operator matches as in Kubernetes, and requirements are ANDed."""
    assert matches(selector) is expected


@pytest.mark.parametrize("selector", ["missing!=x", "missing notin (x,y)"])
def test_negative_operators_match_objects_without_the_label(selector: str) -> None:
    """`!=` and `notin` match objects that lack the label, as in Kubernetes."""
    assert matches(selector)
    assert matches(selector, {})


@pytest.mark.parametrize("selector", ["missing>1", "missing<1", "app>1", "app<1"])
def test_comparisons_need_an_integer_label(selector: str) -> None:
    """`>` and `<` fail on a missing label and on a label that is not an integer."""
    assert not matches(selector)


def test_comparisons_parse_labels_like_go() -> None:
    """Object labels with a sign parse (like strconv.ParseInt); out-of-int64 ones never match."""
    assert matches("n<0", {"n": "-5"})
    assert matches("n>4", {"n": "+5"})
    assert not matches("n>0", {"n": str(2**63)})
    assert not matches("n>0", {"n": "1_000"})
    assert not matches("n>0", {"n": " 5"})
    assert not matches("n>0", {"n": "9" * 5000})


def test_whitespace_around_tokens() -> None:
    """Spaces, tabs and newlines between tokens are ignored."""
    assert str(LabelSelector.parse("  app  =  web ,\ttier\nin ( a , frontend ) , ! x ")) == (
        "app=web,tier in (a,frontend),!x"
    )


def test_empty_values_are_allowed() -> None:
    """`key=`, `key in ()` and empty items in a set mean the empty value, as in Kubernetes."""
    assert matches("a=", {"a": ""})
    assert not matches("a=", {})
    assert matches("a in ()", {"a": ""})
    assert matches("a in (,x)", {"a": ""})
    assert matches("a in (x,,y)", {"a": ""})
    assert matches("a!=,b", {"a": "x", "b": "y"})


def test_in_and_notin_are_keywords_only_as_operators() -> None:
    """`in` and `notin` may be used as keys and values."""
    assert matches("in in (notin)", {"in": "notin"})
    assert matches("notin", {"notin": "x"})
    assert matches("a=in", {"a": "in"})


def test_prefixed_keys() -> None:
    """Keys may carry a DNS subdomain prefix."""
    assert matches("app.kubernetes.io/name=web", {"app.kubernetes.io/name": "web"})


def test_canonical_form() -> None:
    """`str` sorts requirements by key and values, writes `==` as `=`; equal selectors are equal."""
    first = LabelSelector.parse("b notin (z, y), a==1, !c, d, e>1")
    second = LabelSelector.parse("e>1,d,!c,a=1,b notin (y,z)")
    assert str(first) == "a=1,b notin (y,z),!c,d,e>1"
    assert first == second
    assert hash(first) == hash(second)
    assert LabelSelector.parse(str(first)) == first


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app=", None),
        ("=web", "expected: '!', identifier, or end of string"),
        ("app=web,", "found end of string, expected: identifier after ','"),
        ("app=web tier=x", "found \"tier\", expected: ',' or end of string"),
        ("app in (a", "unable to parse requirement: found end of string, expected: ',' or ')'"),
        ("app in a", "unable to parse requirement: found \"a\", expected: '('"),
        ("app in (a b)", "unable to parse requirement: found \"b\", expected: ',' or ')'"),
        ("app in ((a))", "expected: ',' or ')'"),
        ("app notin", "expected: '('"),
        ("app)", 'unable to parse requirement: found ")"'),
        ("app=(x)", 'unable to parse requirement: found "(", expected: identifier'),
        ("app>=3", 'found "=", expected: identifier'),
        ("!app=x", "expected: ',' or end of string"),
        ("!", "found end of string, expected: identifier"),
        ("!!a", 'found "!", expected: identifier'),
        ("app>x", "value must be an integer"),
        ("app<", "value must be an integer"),
        ("app>99999999999999999999", "value must be an integer"),
        ("App_1.x=X-y_z", None),
        ("App_=x", 'invalid label key "App_"'),
        ("-app=x", 'invalid label key "-app"'),
        ("a/b/c", 'invalid label key "a/b/c"'),
        ("/app", "prefix part must be non-empty"),
        ("Example.com/app", "prefix part must be a lowercase RFC 1123 subdomain"),
        ("example.com/", "name part must be non-empty"),
        ("a" * 64, "name part must be no more than 63 characters"),
        ("app=" + "v" * 64, "must be no more than 63 characters"),
        ("app=-v", 'invalid label value "-v" for key "app"'),
        ("app in (ok,bad!)", "expected: ',' or ')'"),
        ("app in (ok,bad.)", 'invalid label value "bad."'),
        ("app=wéb", 'invalid label value "w\\u00e9b"'),
        ("a\x00b", 'invalid label key "a\\u0000b"'),
    ],
)
def test_label_selector_errors(text: str, message: str | None) -> None:
    """Malformed or invalid selectors raise BadRequestError naming the offending part."""
    if message is None:  # valid after all: the parametrization documents the boundary
        LabelSelector.parse(text)
        return
    with pytest.raises(BadRequestError) as caught:
        LabelSelector.parse(text)
    assert message in caught.value.message
    assert caught.value.code == 400


@pytest.mark.parametrize(
    "text",
    ["(" * 10_000, "a in (" + "x," * 5000, "a" * 10_000, "\x00" * 100, "é=ü", "a=b,=)(!!"],
)
def test_label_selector_pathological_input(text: str) -> None:
    """Long or strange input raises BadRequestError, never anything else."""
    with pytest.raises(BadRequestError):
        LabelSelector.parse(text)


def test_requirement_validates_when_built_directly() -> None:
    """A Requirement built in code is validated like a parsed one."""
    assert str(Requirement("a", "in", frozenset({"x", "y"}))) == "a in (x,y)"
    with pytest.raises(BadRequestError, match="wrong number of values"):
        Requirement("a", "=")
    with pytest.raises(BadRequestError, match="wrong number of values"):
        Requirement("a", "exists", frozenset({"x"}))
    with pytest.raises(BadRequestError, match="invalid label key"):
        Requirement("a b", "exists")


@pytest.mark.parametrize(
    ("selector", "name", "namespace", "expected"),
    [
        ("metadata.name=foo", "foo", "ns", True),
        ("metadata.name==foo", "foo", "ns", True),
        ("metadata.name=foo", "bar", "ns", False),
        ("metadata.name!=foo", "bar", "ns", True),
        ("metadata.name!=foo", "foo", "ns", False),
        ("metadata.namespace=ns", "foo", "ns", True),
        ("metadata.namespace=ns", "foo", "other", False),
        ("metadata.namespace!=ns", "foo", "other", True),
        ("metadata.namespace=", "foo", "", True),
        ("metadata.namespace=ns", "foo", "", False),
        ("metadata.name=foo,metadata.namespace=ns", "foo", "ns", True),
        ("metadata.name=foo,metadata.namespace=ns", "foo", "other", False),
        ("metadata.name=foo,metadata.name=bar", "foo", "ns", False),
    ],
)
def test_field_selector_matching(selector: str, name: str, namespace: str, expected: bool) -> None:
    """Field requirements compare name and namespace and are ANDed."""
    assert FieldSelector.parse(selector).matches(name, namespace) is expected


def test_empty_field_selector() -> None:
    """Empty text matches everything and fixes neither name nor namespace."""
    for text in ("", "  ", ","):
        selector = FieldSelector.parse(text)
        assert selector.empty
        assert selector.matches("anything", "")
        assert selector.exact_name is None
        assert selector.exact_namespace is None


def test_field_selector_exact_values() -> None:
    """exact_name/exact_namespace give the value of an `=`/`==` requirement, else None."""
    both = FieldSelector.parse("metadata.namespace==ns,metadata.name=foo")
    assert (both.exact_name, both.exact_namespace) == ("foo", "ns")
    negative = FieldSelector.parse("metadata.name!=foo,metadata.namespace!=ns")
    assert (negative.exact_name, negative.exact_namespace) == (None, None)
    assert FieldSelector.parse("metadata.name=").exact_name == ""


def test_field_selector_escapes_and_canonical_form() -> None:
    """Values may escape `\\`, `,` and `=`; `str` sorts, writes `==` as `=` and re-escapes."""
    selector = FieldSelector.parse(r"metadata.name==a\,b\=c\\d,metadata.namespace!=x")
    assert selector.matches("a,b=c\\d", "y")
    assert str(selector) == r"metadata.name=a\,b\=c\\d,metadata.namespace!=x"
    assert FieldSelector.parse(str(selector)) == selector


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("spec.foo=bar", "field label not supported: spec.foo"),
        ("metadata.labels=x", "field label not supported: metadata.labels"),
        ("metadata.name = foo", "field label not supported: metadata.name "),
        ("=foo", "field label not supported: "),
        ("metadata.name", 'can\'t understand "metadata.name"'),
        ("metadata.name=a,b", 'can\'t understand "b"'),
        ("metadata.name=a=b", 'invalid field selector value "a=b"'),
        (r"metadata.name=a\x", "must be escaped"),
        ("metadata.name=a\\", "must be escaped"),
        ("metadata.name>a", "can't understand"),
    ],
)
def test_field_selector_errors(text: str, message: str) -> None:
    """Unknown fields and bad syntax raise BadRequestError naming the offending part."""
    with pytest.raises(BadRequestError) as caught:
        FieldSelector.parse(text)
    assert message in caught.value.message


def test_selector_combines_both() -> None:
    """Selector matches when both its label and field selectors match."""
    selector = Selector.parse("app=web", "metadata.namespace=ns")
    assert not selector.empty
    assert selector.matches("foo", "ns", {"app": "web"})
    assert not selector.matches("foo", "other", {"app": "web"})
    assert not selector.matches("foo", "ns", {"app": "db"})


def test_selector_absent_parameters_match_everything() -> None:
    """None and empty strings give a selector equal to EVERYTHING, which matches anything."""
    assert Selector.parse(None, None) == EVERYTHING
    assert Selector.parse("", " ") == EVERYTHING
    assert EVERYTHING.empty
    assert EVERYTHING.matches("x", "", {})


def test_selector_parse_errors_are_bad_requests() -> None:
    """Either parameter being malformed is a BadRequestError."""
    with pytest.raises(BadRequestError):
        Selector.parse("a in", None)
    with pytest.raises(BadRequestError):
        Selector.parse(None, "spec.x=1")


_SELECTOR_ALPHABET = st.sampled_from([*"ab=!(),<> \t\x00é/.-_", "in", "notin", "1"])


@settings(database=None, max_examples=300)
@given(st.one_of(st.text(), st.lists(_SELECTOR_ALPHABET).map("".join)))
def test_label_selector_parse_only_raises_bad_request(text: str) -> None:
    """Any text either parses, to a selector whose canonical form parses back equal, or raises
    BadRequestError."""
    try:
        selector = LabelSelector.parse(text)
    except BadRequestError:
        return
    assert LabelSelector.parse(str(selector)) == selector
    selector.matches({"a": "1", "b": ""})


@settings(database=None, max_examples=300)
@given(
    st.one_of(
        st.text(),
        st.lists(st.sampled_from(["metadata.name", "metadata.namespace", "=", "!=", ",", "\\", "x"])).map(
            "".join
        ),
    )
)
def test_field_selector_parse_only_raises_bad_request(text: str) -> None:
    """Any text either parses, to a selector whose canonical form parses back equal, or raises
    BadRequestError."""
    try:
        selector = FieldSelector.parse(text)
    except BadRequestError:
        return
    assert FieldSelector.parse(str(selector)) == selector
    selector.matches("x", "")
