"""422 Invalid answers worded as kube-apiserver words them.

kube-apiserver's ``NewInvalid``: message ``Flunder.wardle.example.com "Bad_Name" is invalid: <field
errors>``, ``details`` {kind, group, name, one cause per field error}. Every 422 names its object,
whichever check found the problem (the key's name rules, metadata, a patch that does not apply). What
kubectl prints from them is tests/clients/test_kubectl_output.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from support.rest import Api, Reply, assert_status
from support.wardle import FISCHERS_PATH, GROUP, flunder, flunder_path, flunders_path

from watchcache.service import Service

SUBDOMAIN_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_RULE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
KEY_RULE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
FLUNDERS = flunders_path("default")
BAD_NAME = ("FieldValueInvalid", "metadata.name", f'Invalid value: "Bad_Name": {SUBDOMAIN_RULE}')


@pytest.fixture
async def api(service: Service) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, service.url)


def invalid(reply: Reply, *, kind: str = "Flunder", name: str, causes: list[tuple[str, str, str]]) -> None:
    """``reply`` is kube-apiserver's 422 for ``name`` with these (reason, field, message) causes."""
    status = assert_status(reply, 422, "Invalid")
    details = status["details"]
    assert (details["kind"], details["group"], details["name"]) == (kind, GROUP, name), details
    assert [(c["reason"], c["field"], c["message"]) for c in details["causes"]] == causes, details
    shown = [f"{field}: {message}" for _, field, message in causes]
    aggregate = shown[0] if len(shown) == 1 else "[" + ", ".join(shown) + "]"
    assert status["message"] == f'{kind}.{GROUP} "{name}" is invalid: {aggregate}', status["message"]


async def test_a_bad_name_is_named_with_its_kind_and_rule(api: Api) -> None:
    """A create, get, replace, patch or delete of a name that is no DNS-1123 subdomain: 422 naming the
    kind, the name, the field and kube's rule, wherever the name came from (body or URL)."""
    invalid(await api.call("POST", FLUNDERS, body=flunder("Bad_Name")), name="Bad_Name", causes=[BAD_NAME])
    path = flunder_path("default", "Bad_Name")
    requests: list[tuple[str, dict[str, Any]]] = [
        ("GET", {}),
        ("PUT", {"body": {"spec": {}}}),
        ("DELETE", {}),
        ("PATCH", {"body": {"spec": {}}, "content_type": "application/merge-patch+json"}),
    ]
    for method, kwargs in requests:
        invalid(await api.call(method, path, **kwargs), name="Bad_Name", causes=[BAD_NAME])
    reply = await api.call("POST", FISCHERS_PATH, body={"metadata": {"name": "Bad_Name"}})
    invalid(reply, kind="Fischer", name="Bad_Name", causes=[BAD_NAME])


async def test_every_metadata_problem_is_one_cause_in_kube_order(api: Api) -> None:
    """A missing name, a bad label key and a too long label value are each a cause, in kube-apiserver's
    order (generateName, name, namespace, labels), in one 422; a bad generateName names the generated
    name too."""
    reply = await api.call("POST", FLUNDERS, body={"metadata": {"labels": {"-x-": "ok", "y": "v" * 64}}})
    invalid(
        reply,
        name="",
        causes=[
            ("FieldValueRequired", "metadata.name", "Required value: name or generateName is required"),
            ("FieldValueInvalid", "metadata.labels", f'Invalid value: "-x-": {KEY_RULE}'),
            (
                "FieldValueInvalid",
                "metadata.labels",
                f'Invalid value: "{"v" * 64}": must be no more than 63 characters',
            ),
        ],
    )
    reply = await api.call("POST", FLUNDERS, body={"metadata": {"generateName": "Bad-"}})
    generated = reply.body["details"]["name"]
    assert generated.startswith("Bad-") and len(generated) == 9, generated
    invalid(
        reply,
        name=generated,
        causes=[
            ("FieldValueInvalid", "metadata.generateName", f'Invalid value: "Bad-": {SUBDOMAIN_RULE}'),
            ("FieldValueInvalid", "metadata.name", f'Invalid value: "{generated}": {SUBDOMAIN_RULE}'),
        ],
    )


async def test_a_bad_namespace_and_a_failed_patch_name_their_object(api: Api) -> None:
    """A namespace that is no DNS-1123 label (on a list too), and a JSON patch whose test fails: 422
    with the kind, the name (empty for a list) and a cause saying why."""
    cause = ("FieldValueInvalid", "metadata.namespace", f'Invalid value: "Bad_NS": {LABEL_RULE}')
    invalid(await api.call("GET", flunders_path("Bad_NS")), name="", causes=[cause])
    invalid(
        await api.call("POST", flunders_path("Bad_NS"), body=flunder("ok", "Bad_NS")),
        name="ok",
        causes=[cause],
    )

    await api.create(flunder("p"))
    test_op = [{"op": "test", "path": "/spec/size", "value": 2}]
    reply = await api.call(
        "PATCH", flunder_path("default", "p"), body=test_op, content_type="application/json-patch+json"
    )
    why = "the JSON patch cannot be applied: operation 0 (test): test failed: the value at /spec/size differs"
    invalid(reply, name="p", causes=[("FieldValueInvalid", "patch", f"Invalid value: {why}")])
