"""deploy/ and the Dockerfile, checked offline: no cluster and no docker here.

``kubectl kustomize deploy/`` renders the manifests; each object is checked against the Kubernetes
schema by the official client's models (it round-trips exactly: no unknown or misspelt field, required
fields present); then what matters is checked by name (probes, security context, resources, how the
config and tokens reach the container). Finally the pod's command is run as the rendered manifests
and the Dockerfile say, against a real etcd, with the ConfigMap and Secret laid out where their
volumes are mounted: its probes and the image's HEALTHCHECK must pass.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from kubernetes.client import ApiClient
from support.serve import WATCHCACHE, read_banner, wait_ready

from watchcache.config import load_config
from watchcache.etcd.process import free_port
from watchcache.tenancy.auth import load_token_file
from watchcache.version import VERSION

REPO = Path(__file__).parent.parent.parent
DEPLOY = REPO / "deploy"

# The model class of each kind the base may hold.
MODELS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
}


# -- reading deploy/ and the Dockerfile --------------------------------------------------------------


def render(directory: Path = DEPLOY) -> list[dict[str, Any]]:
    """``kubectl kustomize DIRECTORY``, parsed."""
    kubectl = shutil.which("kubectl")
    assert kubectl is not None, "kubectl is needed to render deploy/"
    done = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    """The rendered manifests."""
    return render()


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, [obj["kind"] for obj in objects]
    return found[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def flags(args: list[str]) -> dict[str, str]:
    """``--name=value`` arguments by name (the manifests spell every flag that way)."""
    out = {}
    for arg in args:
        name, equals, value = arg.partition("=")
        assert name.startswith("--") and equals, f"want --flag=value, not {arg!r}"
        out[name] = value
    return out


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str

    def exec_form(self) -> list[str]:
        parsed = json.loads(self.value)
        assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed), self
        return parsed


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (REPO / "Dockerfile").read_text()
    logical, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending
    out = []
    for line in logical:
        keyword, _, value = line.strip().partition(" ")
        out.append(Instruction(keyword.upper(), value.strip()))
    return out


def instructions(keyword: str) -> Iterator[Instruction]:
    return (i for i in dockerfile() if i.keyword == keyword)


def only(keyword: str) -> Instruction:
    found = list(instructions(keyword))
    assert len(found) == 1, (keyword, found)
    return found[0]


def healthcheck_command() -> list[str]:
    """The HEALTHCHECK's exec-form command."""
    value = only("HEALTHCHECK").value
    options, cmd, command = value.partition("CMD ")
    assert cmd and all(o.startswith("--") for o in options.split()), value
    return Instruction("CMD", command).exec_form()


def image_env() -> dict[str, str]:
    env = {}
    for instruction in instructions("ENV"):
        for pair in shlex.split(instruction.value):
            name, _, value = pair.partition("=")
            env[name] = value
    return env


# -- the manifests -----------------------------------------------------------------------------------


def test_kustomize_renders_the_objects_of_a_deployment(objects: list[dict[str, Any]]) -> None:
    """The base renders to a Deployment, its Service and PodDisruptionBudget, the config as a
    ConfigMap and the tokens as a Secret, each exactly one."""
    assert sorted(obj["kind"] for obj in objects) == [
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Secret",
        "Service",
    ]


def test_every_object_matches_the_kubernetes_schema(objects: list[dict[str, Any]]) -> None:
    """Each object deserializes into the official client's model of its kind and serializes back to
    itself: a field the schema does not know (a typo, a wrong level) would be dropped, a required one
    missing or of the wrong type would be refused."""
    check_schema(objects)


def check_schema(objects: list[dict[str, Any]]) -> None:
    client = ApiClient()
    for obj in objects:
        model = MODELS.get((obj["apiVersion"], obj["kind"]))
        assert model is not None, f"unexpected {obj['apiVersion']} {obj['kind']}"
        typed = client.deserialize(json.dumps(obj), model, "application/json")
        assert client.sanitize_for_serialization(typed) == obj, obj["kind"]


def test_replicas_service_and_budget_select_the_pods(objects: list[dict[str, Any]]) -> None:
    """Several replicas; the Deployment's, Service's and PodDisruptionBudget's selectors all pick the
    pod template's labels; the Service targets the container's named port."""
    deployment = one(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    service = one(objects, "Service")
    budget = one(objects, "PodDisruptionBudget")
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"],
        budget["spec"]["selector"]["matchLabels"],
    ):
        assert selector and selector.items() <= pod_labels.items()
    assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    ports = {p["name"]: p["containerPort"] for p in container(objects)["ports"]}
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    assert "http" in ports


def test_probes_ask_livez_and_readyz_on_the_served_port(objects: list[dict[str, Any]]) -> None:
    """Readiness asks /readyz (503 until etcd is reachable and the caches have loaded), liveness and
    start-up /livez, on the port watchcache is told to listen on."""
    c = container(objects)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert int(flags(c["args"])["--port"]) == ports["http"]
    assert flags(c["args"])["--bind-address"] == "0.0.0.0"
    expected = {"readinessProbe": "/readyz", "livenessProbe": "/livez", "startupProbe": "/livez"}
    for probe, path in expected.items():
        assert c[probe]["httpGet"] == {"path": path, "port": "http"}, probe


def test_the_pod_runs_restricted(objects: list[dict[str, Any]]) -> None:
    """The pod meets the "restricted" Pod Security Standard: non-root (the image's numeric user),
    no privilege escalation, every capability dropped, the RuntimeDefault seccomp profile; and its
    root filesystem is read-only, with no service account token mounted."""
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] > 0
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    c = container(objects)["securityContext"]
    assert c["allowPrivilegeEscalation"] is False
    assert c["readOnlyRootFilesystem"] is True
    assert c["capabilities"] == {"drop": ["ALL"]}
    user = only("USER").value
    assert user == f"{security['runAsUser']}:{security['runAsGroup']}", "the Dockerfile's USER"


def test_resources_are_requested_and_limited(objects: list[dict[str, Any]]) -> None:
    resources = container(objects)["resources"]
    for part in ("requests", "limits"):
        assert set(resources[part]) == {"cpu", "memory"}, part


def test_config_and_tokens_come_from_the_configmap_and_secret(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    """--config is the ConfigMap's watchcache.yaml as mounted, a configuration watchcache loads with
    tenants (authentication on); --token-auth-file is the Secret's tokens.csv as mounted, a token file
    watchcache loads (shipping no token); --etcd-servers and --etcd-prefix come from the ConfigMap."""
    c = container(objects)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    configmap, secret = one(objects, "ConfigMap"), one(objects, "Secret")
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounted = {m["mountPath"]: volumes[m["name"]] for m in c["volumeMounts"]}
    assert all(m.get("readOnly") for m in c["volumeMounts"])
    args = flags(c["args"])

    config_dir, _, config_file = args["--config"].rpartition("/")
    config_volume = mounted[config_dir]["configMap"]
    assert config_volume["name"] == configmap["metadata"]["name"]
    key = next(item["key"] for item in config_volume["items"] if item["path"] == config_file)
    config = load_config(write(tmp_path / "watchcache.yaml", configmap["data"][key]))
    assert config.tenants, "deploy/ must serve with authentication on"

    tokens_dir, _, tokens_file = args["--token-auth-file"].rpartition("/")
    secret_volume = mounted[tokens_dir]["secret"]
    assert secret_volume["secretName"] == secret["metadata"]["name"]
    tokens = base64.b64decode(secret["data"][tokens_file]).decode()
    assert load_token_file(write(tmp_path / "tokens.csv", tokens)) == []

    env = {e["name"]: e["valueFrom"]["configMapKeyRef"] for e in c["env"]}
    assert args["--etcd-servers"] == "$(ETCD_SERVERS)" and args["--etcd-prefix"] == "$(ETCD_PREFIX)"
    for ref in env.values():
        assert ref["name"] == configmap["metadata"]["name"] and ref["key"] in configmap["data"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_readmes_overlay_renders_with_its_settings(tmp_path: Path) -> None:
    """The overlay the README shows, beside a copy of deploy/, puts everything in its namespace, uses
    its image, etcd, configuration and tokens, and the pods follow the generated names."""
    readme = (REPO / "README.md").read_text().split("## Deploy on Kubernetes", 1)[1]
    block = re.search(r"```yaml\n(# overlay/kustomization.yaml\n.*?)```", readme, re.DOTALL)
    assert block is not None
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    overlay = tmp_path / "overlay"
    config = "resources:\n  - {group: a.example.com, versions: [v1], resource: as, kind: A}\ntenants: []\n"
    write(overlay / "kustomization.yaml", block[1])
    write(overlay / "watchcache.yaml", config)
    write(overlay / "tokens.csv", "0123456789abcdef,wardle,wardle\n")
    objects = render(overlay)
    check_schema(objects)
    assert {obj["metadata"].get("namespace") for obj in objects} == {"watchcache"}
    assert container(objects)["image"] == f"registry.example.com/watchcache:{VERSION}"
    configmap, secret = one(objects, "ConfigMap"), one(objects, "Secret")
    assert configmap["data"]["etcd-servers"] == "http://etcd.etcd.svc:2379"
    assert configmap["data"]["etcd-prefix"] == "/registry"  # merged: the base's other keys stay
    assert configmap["data"]["watchcache.yaml"] == config
    assert base64.b64decode(secret["data"]["tokens.csv"]).decode() == "0123456789abcdef,wardle,wardle\n"
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == configmap["metadata"]["name"]
    assert volumes["tokens"]["secret"]["secretName"] == secret["metadata"]["name"]


def test_the_image_is_the_package_version() -> None:
    """The kustomization deploys the image tagged with this version of watchcache."""
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert kustomization["images"] == [{"name": "watchcache", "newTag": VERSION}]


# -- the Dockerfile ----------------------------------------------------------------------------------


def test_dockerfile_base_is_pinned_to_a_debian_release_and_the_supported_python() -> None:
    """FROM names the Debian release (bookworm), and the Python pyproject.toml requires."""
    with open(REPO / "pyproject.toml", "rb") as f:
        requires = tomllib.load(f)["project"]["requires-python"]
    assert requires == ">=3.11"
    assert only("FROM").value == "python:3.11-slim-bookworm"


def test_dockerfile_copies_what_exists_and_serves_the_example_config() -> None:
    """Every COPY source exists in the repository; the example configuration is copied to the path
    the default command serves; the entrypoint is the console script pyproject.toml installs."""
    copies = [i.value.split() for i in instructions("COPY")]
    for *sources, _ in copies:
        for source in sources:
            assert (REPO / source).exists(), source
    config_in_image = next(dest for *sources, dest in copies if sources == ["examples/watchcache.yaml"])
    command = only("CMD").exec_form()
    assert command[command.index("--config") + 1] == config_in_image
    load_config(REPO / "examples" / "watchcache.yaml")
    with open(REPO / "pyproject.toml", "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    assert only("ENTRYPOINT").exec_form() == ["watchcache", "serve"] and "watchcache" in scripts
    ignored = (REPO / ".dockerignore").read_text().split()
    assert not {"watchcache", "examples", "pyproject.toml", "README.md"} & set(ignored)


def test_dockerfile_healthcheck_asks_livez_with_python() -> None:
    """The HEALTHCHECK runs Python (slim images have no curl) against /livez on the exposed port."""
    command = healthcheck_command()
    assert command[0] == "python" and not any("curl" in part or "wget" in part for part in command)
    url = image_env()["WATCHCACHE_HEALTHCHECK_URL"]
    assert url == f"http://127.0.0.1:{only('EXPOSE').value}/livez"


# -- running what the pod and the image run ----------------------------------------------------------


async def healthcheck(url: str) -> int:
    """The Dockerfile's HEALTHCHECK command, run here with its URL pointed at ``url``."""
    command = healthcheck_command()
    env = {**os.environ, **image_env(), "WATCHCACHE_HEALTHCHECK_URL": url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *command[1:], env=env, stderr=asyncio.subprocess.DEVNULL
    )
    async with asyncio.timeout(30):
        return await proc.wait()


async def stop(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        return await proc.wait()


async def test_the_pods_command_serves_and_passes_its_probes(
    objects: list[dict[str, Any]], etcd_endpoints: list[str], prefix: str, tmp_path: Path
) -> None:
    """The container as Kubernetes would start it: the image's entrypoint with the rendered args, the
    ConfigMap and Secret files where their volumes are mounted (under a temp dir), $(VAR)s expanded
    from the ConfigMap — but with this test's etcd and key prefix. Its start-up, liveness and
    readiness probes pass; an API request without a token is refused (401); the image's HEALTHCHECK
    passes; SIGTERM (the kubelet's stop) exits 0."""
    c = container(objects)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    configmap, secret = one(objects, "ConfigMap"), one(objects, "Secret")
    volumes = {v["name"]: v for v in pod["volumes"]}
    root = tmp_path / "pod"
    for mount in c["volumeMounts"]:
        volume = volumes[mount["name"]]
        target = root / mount["mountPath"].lstrip("/")
        if "configMap" in volume:
            for item in volume["configMap"]["items"]:
                write(target / item["path"], configmap["data"][item["key"]])
        else:
            for key, value in secret["data"].items():
                write(target / key, base64.b64decode(value).decode())
    env = {e["name"]: configmap["data"][e["valueFrom"]["configMapKeyRef"]["key"]] for e in c["env"]}
    env |= {"ETCD_SERVERS": ",".join(etcd_endpoints), "ETCD_PREFIX": prefix}  # not the cluster's etcd
    port = free_port()
    args = []
    for arg in c["args"]:
        name, _, value = re.sub(r"\$\((\w+)\)", lambda m: env[m[1]], arg).partition("=")
        if value.startswith("/etc/watchcache/"):
            value = str(root / value.lstrip("/"))
        if name == "--port":
            value = str(port)
        args.append(f"{name}={value}")
    entrypoint = only("ENTRYPOINT").exec_form()
    proc = await asyncio.create_subprocess_exec(
        WATCHCACHE, *entrypoint[1:], *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        banner = await read_banner(proc)
        base = f"http://127.0.0.1:{port}"
        assert banner.url == base
        await wait_ready(base)
        async with aiohttp.ClientSession() as session:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                async with session.get(base + c[probe]["httpGet"]["path"]) as reply:
                    assert reply.status == 200, probe
            async with session.get(f"{base}/apis/wardle.example.com/v1alpha1/fischers") as reply:
                assert reply.status == 401
        assert await healthcheck(f"{base}/livez") == 0
    finally:
        assert await stop(proc) == 0


async def test_the_images_default_command_serves_the_example_and_is_healthy(tmp_path: Path) -> None:
    """``docker run IMAGE`` runs ENTRYPOINT + CMD: the example configuration (copied from
    examples/watchcache.yaml) on a private etcd. Run here (on a free port) it serves, the HEALTHCHECK
    passes, and once it has stopped the HEALTHCHECK fails."""
    copies = {tuple(i.value.split()[:-1]): i.value.split()[-1] for i in instructions("COPY")}
    in_image = {dest: REPO / source[0] for source, dest in copies.items() if len(source) == 1}
    command = [*only("ENTRYPOINT").exec_form(), *only("CMD").exec_form()]
    command = [str(in_image.get(part, part)) for part in command]
    proc = await asyncio.create_subprocess_exec(
        WATCHCACHE,
        *command[1:],
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        banner = await read_banner(proc)
        assert banner.etcd_dir is not None  # the image's etcd-server is for this
        await wait_ready(banner.url)
        assert await healthcheck(f"{banner.url}/livez") == 0
    finally:
        assert await stop(proc) == 0
    assert await healthcheck(f"{banner.url}/livez") != 0
