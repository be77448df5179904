"""The deploy manifests name only what exists: every command, Celery app and queue,
variable, port and probe path they give a process is one the code has.

No cluster or Docker engine is needed: the files are parsed (PyYAML) and checked
against the code; the settings are loaded with each process's own environment.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

import pytest
from django.core.management import get_commands
from django.urls import Resolver404, resolve

from gpu_inference import runtime
from gpu_inference.serving import agent, launcher
from tests.deploy.manifests import (
    ASGI_LEVEL_PATHS,
    COMPOSE,
    DEPLOY,
    DOCKERFILE,
    KUBERNETES,
    ROOT,
    VLLM_PATHS,
    Process,
    all_processes,
    compose_document,
    config_maps,
    kind_of,
    kubernetes_documents,
    kubernetes_processes,
    option,
    pod_templates,
)

# Variables read by the interpreter, Django, or a third-party image, not by our settings.
STANDARD_VARIABLES = {"PYTHONPATH", "PYTHONUNBUFFERED", "DJANGO_SETTINGS_MODULE"}
IMAGE_VARIABLES = {"postgres:": {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"}}
# Values must never be written into a manifest: they come from a Secret (or the shell).
SECRETS = {
    "SECRET_KEY",
    "API_KEY_HASH_SECRET",
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "VLLM_API_KEY",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "POSTGRES_PASSWORD",
}
# What a secret reference stands for when the settings are loaded with a process's env.
SECRET_STAND_INS = {
    "SECRET_KEY": "kV3q9Tz-7bLw2RfN8xYp4HcJ6mDs1GaE5uQo0WiB-r4Nd0mTa1lXy",
    "API_KEY_HASH_SECRET": "Zr8Kp2Lx6Vn4Qw9Bt1Hm7Jc3Fs5Dg0AyUeNoTi-9sQmZ2wKv7Lp",
    "DATABASE_URL": "postgres://tokenmill@db:5432/tokenmill",
    "REDIS_URL": "redis://redis:6379/0",
    "CELERY_BROKER_URL": "redis://redis:6379/1",
    "CELERY_RESULT_BACKEND": "redis://redis:6379/2",
}
PROCESSES = all_processes()


def ids(processes: list[Process]) -> list[str]:
    return [process.where for process in processes]


def of_kind(*kinds: str) -> list[Process]:
    return [process for process in PROCESSES if kind_of(process) in kinds]


def test_the_manifests_start_every_process_the_platform_has():
    for where in ("compose.yaml", "kubernetes"):
        processes = [
            p for p in PROCESSES if p.where.startswith("compose.yaml") == (where == "compose.yaml")
        ]
        kinds = {kind_of(process) for process in processes}
        assert {"manage.py", "celery", "gpu-worker", "agent", "vllm"} <= kinds, where
        queues = {option(p.argv, "-Q") for p in processes if kind_of(p) in ("celery", "gpu-worker")}
        assert {"default", "control", "gpu", "batch"} <= queues, where
        assert [p for p in processes if kind_of(p) == "celery" and "beat" in p.argv], where
        assert [p for p in processes if "runweb" in p.argv], where


# --- commands --------------------------------------------------------------------------


@pytest.mark.parametrize("process", of_kind("manage.py"), ids=ids(of_kind("manage.py")))
def test_manage_py_commands_exist(process):
    assert process.argv[2] in get_commands(), f"{process.where}: no command {process.argv[2]}"


def celery_apps():
    from gpu_inference.gpu_worker import app as gpu_app
    from workers.celery import app as platform_app

    return {"workers.celery": platform_app, "gpu_inference.gpu_worker": gpu_app}


CELERY = of_kind("celery", "gpu-worker")


@pytest.mark.parametrize("process", CELERY, ids=ids(CELERY))
def test_celery_apps_and_queues_exist(process):
    argv = process.argv
    app = celery_apps().get(option(argv, "-A", "--app"))
    assert app is not None, f"{process.where}: no Celery app {option(argv, '-A')}"
    subcommand = argv[argv.index(option(argv, "-A", "--app")) + 1]
    assert subcommand in ("worker", "beat"), process.where
    if subcommand == "beat":
        assert app.main != "tokenmill-gpu" and app.conf.beat_schedule
        return
    queues = {queue.name for queue in app.conf.task_queues}
    for queue in option(argv, "-Q").split(","):
        assert queue in queues, f"{process.where}: queue {queue} is not one of {sorted(queues)}"
    node = option(argv, "-n")
    assert node and node.endswith("@%h"), f"{process.where}: give the worker a node name"
    if kind_of(process) == "gpu-worker":
        assert option(argv, "-c", "--concurrency") == "1", "one training task per GPU"


def test_the_worker_probes_name_their_own_worker():
    for process in of_kind("celery"):
        for probe in process.probes:
            if probe.command and "worker_probe" in probe.command:
                node = option(process.argv, "-n").split("@")[0]
                assert probe.command[:3] == ["python", "manage.py", "worker_probe"]
                assert option(probe.command, "--worker") == node, process.where


@pytest.mark.parametrize("process", of_kind("agent"), ids=ids(of_kind("agent")))
def test_serving_agents_are_given_arguments_the_agent_takes(process):
    args = agent.argument_parser().parse_args(process.argv[3:])
    assert args.vllm_url.startswith("http://")
    assert args.cache_dir and args.artifact_store


def vllm_flags() -> set[str]:
    """Every flag the platform's own launcher gives vLLM."""
    spec = launcher.ServerSpec(
        model="/m", served_name="m", port=8000, device="cuda", enable_lora=True, max_model_len=1
    )
    return {
        part for part in launcher.build_command(spec, python="python3") if part.startswith("--")
    }


@pytest.mark.parametrize("process", of_kind("vllm"), ids=ids(of_kind("vllm")))
def test_vllm_servers_run_as_the_launcher_runs_them_with_lora(process):
    command = launcher.build_command(
        launcher.ServerSpec(model="/m", served_name="m", port=1), python="python3"
    )
    assert process.argv[:3] == command[:3]
    unknown = {part for part in process.argv[3:] if part.startswith("--")} - vllm_flags()
    assert not unknown, f"{process.where}: flags the launcher never gives vLLM: {unknown}"
    assert "--enable-lora" in process.argv, "chat models serve fine-tunes as LoRA adapters"
    served = option(process.argv, "--served-model-name")
    assert option(process.argv, "--model").rstrip("/").endswith("/" + served)
    assert process.env.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING") == "True"


# --- variables -------------------------------------------------------------------------


@cache
def settings_variables(env: frozenset) -> tuple[str, ...]:
    """Load the platform's settings in a fresh process with exactly `env`; the variables
    they read (tokenmill.env records each)."""
    code = (
        "import json\n"
        "import tokenmill.settings\n"
        "from tokenmill.env import variables_read\n"
        "print(json.dumps(variables_read()))\n"
    )
    return _variables(code, env, "the settings")


@cache
def gpu_worker_variables(env: frozenset) -> tuple[str, ...]:
    code = (
        "import json\n"
        "from gpu_inference import gpu_worker\n"
        "print(json.dumps(gpu_worker.variables_read()))\n"
    )
    return (*_variables(code, env, "the GPU worker app"), runtime.THREADS_VARIABLE)


def _variables(code: str, env: frozenset, what: str) -> tuple[str, ...]:
    environment = {"PATH": os.environ["PATH"], **dict(env)}
    environment["PYTHONPATH"] = f"{ROOT}{os.pathsep}{ROOT / 'platform'}"
    var_dir = Path(os.environ.get("TOKENMILL_VAR_DIR") or tempfile.gettempdir())
    environment["TOKENMILL_VAR_DIR"] = str(var_dir / "manifests")
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{what} refuse this environment:\n{result.stderr[-1500:]}"
    return tuple(json.loads(result.stdout))


def effective_env(process: Process) -> frozenset:
    """The process's environment with each secret reference given a stand-in value."""
    env = {}
    for name, value in process.env.items():
        if name in process.secret_refs:
            value = SECRET_STAND_INS.get(name, "stand-in")
        env[name] = value
    if "runweb" in process.argv:
        env["TOKENMILL_ASGI"] = "true"  # as tokenmill/asgi.py sets it in the server
    return frozenset(env.items())


def agent_variables() -> set[str]:
    return set(re.findall(r'os\.environ\.get\("([A-Z0-9_]+)"', Path(agent.__file__).read_text()))


def vllm_variables() -> set[str]:
    spec = launcher.ServerSpec(
        model="/m", served_name="m", port=1, device="cuda", enable_lora=True, api_key="k"
    )
    return set(launcher.build_env(spec, base={}))


@pytest.mark.parametrize("process", PROCESSES, ids=ids(PROCESSES))
def test_every_variable_a_process_is_given_is_one_it_reads(process):
    kind = kind_of(process)
    if kind in ("manage.py", "celery"):
        known = set(settings_variables(effective_env(process)))
    elif kind == "gpu-worker":
        known = set(gpu_worker_variables(effective_env(process)))
    elif kind == "agent":
        known = agent_variables()
    elif kind == "vllm":
        known = vllm_variables()
    else:
        known = next(
            (
                names
                for prefix, names in IMAGE_VARIABLES.items()
                if process.image.startswith(prefix)
            ),
            set(),
        )
    # A variable the command line itself expands (Kubernetes' $(NAME)) is read there.
    known |= set(re.findall(r"\$\(([A-Z0-9_]+)\)", " ".join(process.argv)))
    unknown = set(process.env) - known - STANDARD_VARIABLES
    assert not unknown, f"{process.where}: variables nothing reads: {sorted(unknown)}"


@pytest.mark.parametrize("process", PROCESSES, ids=ids(PROCESSES))
def test_secrets_come_by_reference(process):
    for name in set(process.env) & SECRETS:
        value = process.env[name]
        if value == "" or INTERPOLATED.fullmatch(value):
            assert name in process.secret_refs, process.where
            continue  # a secretKeyRef, or the operator's shell
        # A URL may be written out when it holds no credential (a password-less Redis on
        # the host's own network) or takes its password by reference.
        assert "://" in value, f"{process.where}: {name} is written in the manifest"
        credentials = URL_CREDENTIALS.search(value)
        assert credentials is None or INTERPOLATED.fullmatch(credentials.group(1)), (
            f"{process.where}: {name} carries a password in the manifest"
        )


INTERPOLATED = re.compile(r"\$\{[A-Z0-9_]+(:?[?-][^}]*)?\}")
URL_CREDENTIALS = re.compile(r"://[^/@:]*:([^/@]*)@")


def test_secret_references_name_the_secret_and_key_of_the_variable():
    for _, _, template in pod_templates():
        for container in template["spec"]["containers"]:
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "tokenmill-secrets" and ref["key"] == item["name"]


def test_gpu_nodes_get_no_platform_secrets():
    for process in of_kind("gpu-worker"):
        given = set(process.env) & {"SECRET_KEY", "API_KEY_HASH_SECRET", "DATABASE_URL"}
        assert not given, f"{process.where}: a GPU node needs no {sorted(given)}"


# --- ports and probes ------------------------------------------------------------------


def web_port(process: Process) -> int:
    return int(option(process.argv, "--port") or process.env.get("PORT") or 8000)


def served_port(process: Process) -> int | None:
    if "runweb" in process.argv:
        return web_port(process)
    if kind_of(process) == "vllm":
        return int(option(process.argv, "--port"))
    return None


@pytest.mark.parametrize("process", PROCESSES, ids=ids(PROCESSES))
def test_ports_match_the_port_the_process_listens_on(process):
    port = served_port(process)
    if port is None:
        assert not process.ports, f"{process.where}: exposes a port it does not listen on"
        return
    assert process.ports, f"{process.where}: its port {port} is not declared"
    assert set(process.ports.values()) == {port}, f"{process.where}: listens on {port}"
    if "runweb" in process.argv:
        assert web_port(process) == int(process.env.get("PORT", "8000")), "PORT and --port differ"


def path_exists(process: Process, path: str) -> bool:
    if kind_of(process) == "vllm":
        return path in VLLM_PATHS
    if path in ASGI_LEVEL_PATHS:
        return True
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


@pytest.mark.parametrize("process", PROCESSES, ids=ids(PROCESSES))
def test_probes_reach_real_paths_ports_and_commands(process):
    for probe in process.probes:
        if probe.path is not None:
            assert path_exists(process, probe.path), f"{process.where}: no path {probe.path}"
            assert process.ports.get(probe.port) == served_port(process), (
                f"{process.where}: the {probe.kind} probe's port {probe.port} is not the "
                f"process's port {served_port(process)}"
            )
            if probe.host_header is not None:
                assert probe.host_header in process.env["ALLOWED_HOSTS"].split(","), (
                    f"{process.where}: probe Host {probe.host_header} is not in ALLOWED_HOSTS"
                )
        elif probe.command and probe.command[:2] == ["python", "manage.py"]:
            assert probe.command[2] in get_commands(), process.where
        else:
            assert probe.command, f"{process.where}: an empty probe"


def test_the_web_drains_within_its_grace_period():
    for process in of_kind("manage.py"):
        if "runweb" in process.argv and process.pod is not None:
            drain = int(process.env.get("WEB_DRAIN_SECONDS", "30"))
            assert process.pod["terminationGracePeriodSeconds"] > drain + 5  # with preStop
    web = compose_document()["services"]["web"]
    assert int(web["stop_grace_period"].rstrip("s")) > 30


# --- Kubernetes objects ----------------------------------------------------------------


REQUIRED = {
    "Deployment": ("apps/v1", ["spec.selector.matchLabels", "spec.template.spec.containers"]),
    "Job": ("batch/v1", ["spec.template.spec.containers"]),
    "Service": ("v1", ["spec.selector", "spec.ports"]),
    "HorizontalPodAutoscaler": ("autoscaling/v2", ["spec.scaleTargetRef", "spec.maxReplicas"]),
    "ConfigMap": ("v1", ["data"]),
    "PersistentVolumeClaim": ("v1", ["spec.accessModes", "spec.resources.requests.storage"]),
    "Namespace": ("v1", []),
}


def dig(document: dict, dotted: str):
    value = document
    for part in dotted.split("."):
        value = value[part]
    return value


def test_kubernetes_objects_have_their_required_fields():
    seen = set()
    for file, doc in kubernetes_documents():
        if doc.get("kind") == "Kustomization":
            continue
        where = f"{file}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        assert doc.get("kind") in REQUIRED, f"{where}: unchecked kind"
        api_version, fields = REQUIRED[doc["kind"]]
        assert doc.get("apiVersion") == api_version, where
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), where
        assert (doc["kind"], doc["metadata"]["name"]) not in seen, f"{where}: twice"
        seen.add((doc["kind"], doc["metadata"]["name"]))
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "tokenmill", where
        for dotted in fields:
            dig(doc, dotted)  # a KeyError names the missing field


def test_selectors_match_their_pod_labels():
    pods = {}
    for file, doc, template in pod_templates():
        labels = template["metadata"]["labels"]
        if doc["kind"] == "Deployment":
            selector = doc["spec"]["selector"]["matchLabels"]
            assert selector.items() <= labels.items(), f"{file}: selector {selector} vs {labels}"
        pods[doc["metadata"]["name"]] = (labels, template["spec"])
    for file, doc in kubernetes_documents():
        if doc.get("kind") == "Service":
            matched = [
                spec
                for labels, spec in pods.values()
                if doc["spec"]["selector"].items() <= labels.items()
            ]
            assert matched, f"{file}: Service {doc['metadata']['name']} selects no pod"
            named = {
                port.get("name"): port["containerPort"]
                for spec in matched
                for container in spec["containers"]
                for port in container.get("ports", [])
            }
            for port in doc["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                assert target in named or target in named.values(), f"{file}: port {target}"
        if doc.get("kind") == "HorizontalPodAutoscaler":
            target = doc["spec"]["scaleTargetRef"]
            assert target["kind"] == "Deployment" and target["name"] in pods, file
            assert doc["spec"]["minReplicas"] <= doc["spec"]["maxReplicas"]


def test_volumes_config_maps_and_claims_exist():
    claims = {
        doc["metadata"]["name"]
        for _, doc in kubernetes_documents()
        if doc.get("kind") == "PersistentVolumeClaim"
    }
    maps = config_maps()
    for file, _, template in pod_templates():
        spec = template["spec"]
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, file
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{file}: mount {mount['name']} has no volume"
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in maps, file


def test_gpu_pods_take_one_gpu_on_gpu_nodes():
    gpu = [p for p in kubernetes_processes() if kind_of(p) in ("gpu-worker", "vllm")]
    assert gpu
    for process in gpu:
        assert process.resources["limits"]["nvidia.com/gpu"] == 1, process.where
        assert process.pod.get("nodeSelector"), f"{process.where}: no node selector"


def test_the_kustomization_lists_every_manifest():
    kustomization = next(doc for _, doc in kubernetes_documents() if doc["kind"] == "Kustomization")
    files = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


# --- the image -------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_dockerfile_copies_files_that_exist_and_runs_a_real_command():
    instructions = dockerfile_instructions()
    copies = [args.split() for name, args in instructions if name == "COPY"]
    assert copies
    for *sources, _target in copies:
        for source in sources:
            assert not source.startswith("--"), "no COPY --from here"
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
    commands = [args for name, args in instructions if name in ("CMD", "ENTRYPOINT")]
    assert commands
    argv = json.loads(commands[-1])
    assert argv[:2] == ["python", "manage.py"] and argv[2] in get_commands()
    # Every package the code imports is in the image: it copies each top-level package.
    copied = {source.rstrip("/") for *sources, _ in copies for source in sources}
    assert {"platform", "tenants", "workers", "gpu_inference", "templates", "manage.py"} <= copied


def test_the_manifests_run_the_image_the_dockerfile_builds():
    compose = compose_document()
    build = compose["x-platform"]["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    platform_images = {
        process.image
        for process in PROCESSES
        if kind_of(process) in ("manage.py", "celery", "gpu-worker", "agent")
    }
    assert platform_images == {"tokenmill:latest"}
    assert (DEPLOY / "tokenmill.env.example").is_file()
