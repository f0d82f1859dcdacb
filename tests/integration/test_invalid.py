"""422 Invalid answers worded as kube-apiserver words them, and what kubectl prints from them.

kube-apiserver's ``NewInvalid``: message ``Flunder.wardle.example.com "Bad_Name" is invalid: <field
errors>``, ``details`` {kind, group, name, one cause per field error}; kubectl prints ``The Flunder
"Bad_Name" is invalid: <field>: <cause message>`` from the details. Every 422 names its object, whichever
check found the problem (the key's name rules, metadata, a patch that does not apply).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.kubectl import Kubectl

from watchcache.service import Service

pytestmark = pytest.mark.etcd

GROUP = "wardle.example.com"
FLUNDERS = f"/apis/{GROUP}/v1alpha1/namespaces/default/flunders"
FISCHERS = f"/apis/{GROUP}/v1alpha1/fischers"
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

MANIFEST = """\
apiVersion: wardle.example.com/v1alpha1
kind: Flunder
metadata:
{metadata}
spec: {{size: 1}}
"""

kubectl_only = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


async def call(
    svc: Service, method: str, path: str, body: Any = None, content_type: str = "application/json"
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, svc.url + path, json=body, headers={"Content-Type": content_type} if body else {}
        ) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def invalid(status: Any, *, kind: str = "Flunder", name: str, causes: list[tuple[str, str, str]]) -> None:
    """``status`` is kube-apiserver's 422 for ``name`` with these (reason, field, message) causes."""
    assert status["code"] == 422 and status["reason"] == "Invalid", status
    details = status["details"]
    assert (details["kind"], details["group"], details["name"]) == (kind, GROUP, name), details
    assert [(c["reason"], c["field"], c["message"]) for c in details["causes"]] == causes, details
    shown = [f"{field}: {message}" for _, field, message in causes]
    aggregate = shown[0] if len(shown) == 1 else "[" + ", ".join(shown) + "]"
    assert status["message"] == f'{kind}.{GROUP} "{name}" is invalid: {aggregate}', status["message"]


async def test_a_bad_name_is_named_with_its_kind_and_rule(service: Service) -> None:
    """A create, replace, patch, get or delete of a name that is no DNS-1123 subdomain: 422 naming the
    kind, the name, the field and kube's rule, wherever the name came from (body or URL)."""
    cause = ("FieldValueInvalid", "metadata.name", f'Invalid value: "Bad_Name": {SUBDOMAIN_RULE}')
    code, body = await call(service, "POST", FLUNDERS, {"metadata": {"name": "Bad_Name"}})
    assert code == 422
    invalid(body, name="Bad_Name", causes=[cause])
    for method, payload in (("GET", None), ("PUT", {"spec": {}}), ("DELETE", None)):
        code, body = await call(service, method, f"{FLUNDERS}/Bad_Name", payload)
        assert code == 422, (method, body)
        invalid(body, name="Bad_Name", causes=[cause])
    code, body = await call(
        service, "PATCH", f"{FLUNDERS}/Bad_Name", {"spec": {}}, "application/merge-patch+json"
    )
    invalid(body, name="Bad_Name", causes=[cause])
    code, body = await call(service, "POST", FISCHERS, {"metadata": {"name": "Bad_Name"}})
    invalid(body, kind="Fischer", name="Bad_Name", causes=[cause])


async def test_every_metadata_problem_is_one_cause_in_kube_order(service: Service) -> None:
    """A missing name, a bad generateName, a bad label key and a too long label value are each a
    cause, in kube-apiserver's order (generateName, name, namespace, labels), in one 422."""
    code, body = await call(service, "POST", FLUNDERS, {"metadata": {"labels": {"-x-": "ok", "y": "v" * 64}}})
    assert code == 422
    invalid(
        body,
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
    code, body = await call(service, "POST", FLUNDERS, {"metadata": {"generateName": "Bad-"}})
    assert code == 422
    generated = body["details"]["name"]
    assert generated.startswith("Bad-") and len(generated) == 9, generated
    invalid(
        body,
        name=generated,
        causes=[
            ("FieldValueInvalid", "metadata.generateName", f'Invalid value: "Bad-": {SUBDOMAIN_RULE}'),
            ("FieldValueInvalid", "metadata.name", f'Invalid value: "{generated}": {SUBDOMAIN_RULE}'),
        ],
    )


async def test_a_bad_namespace_and_a_failed_patch_name_their_object(service: Service) -> None:
    """A namespace that is no DNS-1123 label (on a list too), and a JSON patch whose test fails:
    422 with the kind, the name (empty for a list) and a cause saying why."""
    bad_ns = f"/apis/{GROUP}/v1alpha1/namespaces/Bad_NS/flunders"
    code, body = await call(service, "GET", bad_ns)
    assert code == 422
    cause = ("FieldValueInvalid", "metadata.namespace", f'Invalid value: "Bad_NS": {LABEL_RULE}')
    invalid(body, name="", causes=[cause])
    code, body = await call(service, "POST", bad_ns, {"metadata": {"name": "ok"}})
    invalid(body, name="ok", causes=[cause])

    code, _ = await call(service, "POST", FLUNDERS, {"metadata": {"name": "p"}, "spec": {"size": 1}})
    assert code == 201
    test_op = [{"op": "test", "path": "/spec/size", "value": 2}]
    code, body = await call(service, "PATCH", f"{FLUNDERS}/p", test_op, "application/json-patch+json")
    assert code == 422
    why = "the JSON patch cannot be applied: operation 0 (test): test failed: the value at /spec/size differs"
    invalid(body, name="p", causes=[("FieldValueInvalid", "patch", f"Invalid value: {why}")])


@kubectl_only
@pytest.mark.clients
async def test_kubectl_prints_what_is_invalid(service: Service, tmp_path: Path) -> None:
    """kubectl create, get and patch print the kind, the name, the field and the rule."""
    kubectl = Kubectl(service.url, tmp_path)
    manifest = tmp_path / "f.yaml"
    manifest.write_text(MANIFEST.format(metadata="  name: Bad_Name\n  namespace: default"))
    err = await kubectl.fails("create", "-f", str(manifest))
    assert err == (
        f'The Flunder "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_RULE}\n'
    )
    manifest.write_text(MANIFEST.format(metadata="  namespace: default"))
    err = await kubectl.fails("create", "-f", str(manifest))
    required = "metadata.name: Required value: name or generateName is required"
    assert err == f'The Flunder "" is invalid: {required}\n'

    manifest.write_text(MANIFEST.format(metadata='  namespace: default\n  labels: {"-x-": "ok"}'))
    err = await kubectl.fails("create", "-f", str(manifest))
    assert err == (
        'The Flunder "" is invalid: \n'
        "* metadata.name: Required value: name or generateName is required\n"
        f'* metadata.labels: Invalid value: "-x-": {KEY_RULE}\n'
    )

    err = await kubectl.fails("get", "flunder", "Bad_Name", "-n", "default")
    assert err.startswith('The Flunder "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"'), err

    manifest.write_text(MANIFEST.format(metadata="  name: p\n  namespace: default"))
    await kubectl("create", "-f", str(manifest))
    err = await kubectl.fails(
        "patch", "flunder", "p", "-n", "default", "--type=json", "-p", '[{"op":"remove","path":"/spec/x"}]'
    )
    assert err == (
        'The Flunder "p" is invalid: patch: Invalid value: the JSON patch cannot be applied: '
        "operation 0 (remove): path /spec/x does not exist\n"
    )
