"""Reading the deploy manifests (deploy/compose.yaml, deploy/kubernetes/) into one shape:
every process they start, with its command, environment, ports and probes."""

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
# compose.yaml's env_file is the operator's copy of this example.
COMPOSE_ENV_FILES = {"tokenmill.env": DEPLOY / "tokenmill.env.example"}

# Paths the ASGI application answers before Django's URLconf (the health endpoints).
# A probe path must resolve in the URLconf or be one of these.
ASGI_LEVEL_PATHS = {"/healthz", "/readyz"}
# What vLLM's OpenAI server answers without an API key.
VLLM_PATHS = {"/health"}


@dataclass
class Probe:
    kind: str  # liveness, readiness, startup, healthcheck
    path: str | None = None
    port: int | str | None = None
    host_header: str | None = None
    command: list[str] | None = None


@dataclass
class Process:
    """One container of a pod template or one compose service."""

    where: str  # "web.yaml: Deployment tokenmill-web, container web"
    image: str
    argv: list[str]
    env: dict[str, str]  # name -> value ("" for a secret reference)
    secret_refs: set[str] = field(default_factory=set)  # env names that come from a secret
    ports: dict[str | int, int] = field(default_factory=dict)  # name (or number) -> port
    probes: list[Probe] = field(default_factory=list)
    pod: dict | None = None  # the Kubernetes pod spec
    resources: dict = field(default_factory=dict)


def kubernetes_documents() -> list[tuple[str, dict]]:
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append((path.name, document))
    return documents


def config_maps() -> dict[str, dict[str, str]]:
    return {
        doc["metadata"]["name"]: {key: str(value) for key, value in doc.get("data", {}).items()}
        for _, doc in kubernetes_documents()
        if doc.get("kind") == "ConfigMap"
    }


def pod_templates() -> list[tuple[str, dict, dict]]:
    """(file, workload document, pod template) for every workload."""
    found = []
    for name, doc in kubernetes_documents():
        if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            found.append((name, doc, doc["spec"]["template"]))
    return found


def _probe(kind: str, spec: dict) -> Probe:
    if "httpGet" in spec:
        http = spec["httpGet"]
        host = next(
            (h["value"] for h in http.get("httpHeaders", []) if h["name"].lower() == "host"), None
        )
        return Probe(kind, path=http["path"], port=http["port"], host_header=host)
    if "exec" in spec:
        return Probe(kind, command=list(spec["exec"]["command"]))
    raise AssertionError(f"a {kind} probe of an unknown type: {spec}")


def kubernetes_processes() -> list[Process]:
    maps = config_maps()
    processes = []
    for file, doc, template in pod_templates():
        pod = template["spec"]
        for container in pod["containers"]:
            env: dict[str, str] = {}
            secrets: set[str] = set()
            for source in container.get("envFrom", []):
                env.update(maps[source["configMapRef"]["name"]])
            for item in container.get("env", []):
                if "valueFrom" in item:
                    env[item["name"]] = ""
                    if "secretKeyRef" in item["valueFrom"]:
                        secrets.add(item["name"])
                else:
                    env[item["name"]] = str(item["value"])
            argv = [*container.get("command", []), *container.get("args", [])]
            probes = [
                _probe(kind.removesuffix("Probe"), container[kind])
                for kind in ("livenessProbe", "readinessProbe", "startupProbe")
                if kind in container
            ]
            ports = {}
            for port in container.get("ports", []):
                ports[port["containerPort"]] = port["containerPort"]
                if "name" in port:
                    ports[port["name"]] = port["containerPort"]
            processes.append(
                Process(
                    where=f"{file}: {doc['kind']} {doc['metadata']['name']}, container {container['name']}",
                    image=container["image"],
                    argv=[str(part) for part in argv],
                    env=env,
                    secret_refs=secrets,
                    ports=ports,
                    probes=probes,
                    pod=pod,
                    resources=container.get("resources", {}),
                )
            )
    return processes


INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?[?-][^}]*)?\}")


def compose_document() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


URL_IN_CODE = re.compile(r"https?://127\.0\.0\.1:(\d+)(/[\w/.-]*)")


def compose_processes() -> list[Process]:
    processes = []
    for name, service in compose_document()["services"].items():
        env: dict[str, str] = {}
        secrets: set[str] = set()
        for file in service.get("env_file", []):
            env.update(_env_file(COMPOSE_ENV_FILES[file]))
        environment = service.get("environment", {})
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        for key, value in environment.items():
            value = str(value)
            if INTERPOLATION.search(value):
                secrets.add(key)  # from the operator's shell, by reference
            env[key] = value
        argv = [*service.get("entrypoint", []), *service.get("command", [])]
        if isinstance(service.get("command"), str):
            argv = shlex.split(service["command"])
        ports = {}
        for mapping in service.get("ports", []):
            container_port = int(str(mapping).rsplit(":", 1)[-1].split("/")[0])
            ports[container_port] = container_port
        for exposed in service.get("expose", []):  # reachable on the compose network only
            ports[int(str(exposed).split("/")[0])] = int(str(exposed).split("/")[0])
        probes = []
        if "healthcheck" in service:
            test = list(service["healthcheck"]["test"])
            assert test[0] == "CMD", f"compose service {name}: healthcheck must be a CMD list"
            probe = Probe("healthcheck", command=test[1:])
            url = URL_IN_CODE.search(" ".join(test[1:]))
            if url:
                probe.port, probe.path = int(url.group(1)), url.group(2)
            probes.append(probe)
        processes.append(
            Process(
                where=f"compose.yaml: service {name}",
                image=service.get("image", ""),
                argv=[str(part) for part in argv],
                env=env,
                secret_refs=secrets,
                ports=ports,
                probes=probes,
            )
        )
    return processes


def all_processes() -> list[Process]:
    return kubernetes_processes() + compose_processes()


def option(argv: list[str], *flags: str) -> str | None:
    """The value after the first of `flags` in argv (or of `--flag=value`)."""
    for index, part in enumerate(argv):
        for flag in flags:
            if part == flag and index + 1 < len(argv):
                return argv[index + 1]
            if part.startswith(flag + "="):
                return part.split("=", 1)[1]
    return None


def kind_of(process: Process) -> str:
    """What the process is, from its command line."""
    argv = process.argv
    if argv[:2] == ["python", "manage.py"]:
        return "manage.py"
    if argv[:3] == ["python", "-m", "celery"]:
        return {"gpu_inference.gpu_worker": "gpu-worker"}.get(option(argv, "-A", "--app"), "celery")
    if argv[:3] == ["python", "-m", "gpu_inference.serving.agent"]:
        return "agent"
    if argv[:3] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]:
        return "vllm"
    if process.image.startswith(("postgres:", "redis:")):
        return "service"
    raise AssertionError(f"{process.where}: unknown command {argv}")
