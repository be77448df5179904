"""The repository layout rules that keep `platform/` from shadowing the standard library,
and the import boundaries between the web, the workers and the GPU code."""

import json
import os
import pkgutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import gpu_inference

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
HEAVY_MODULES = ("torch", "transformers", "peft", "vllm")


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter from the repository root, as `python -c` would."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_platform_folder_is_not_a_package():
    assert (ROOT / "platform" / "tokenmill" / "__init__.py").is_file()
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_platform_on_sys_path_still_imports_the_standard_library_module():
    # Exactly what manage.py does, from the repository root (which `-c` puts on sys.path too).
    code = (
        "import json, sys; sys.path.insert(0, 'platform'); import platform; "
        "print(json.dumps([platform.__file__, platform.python_version()]))"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    module_file, version = json.loads(result.stdout)
    assert Path(module_file) == Path(sysconfig.get_paths()["stdlib"]) / "platform.py"
    assert version == ".".join(str(part) for part in sys.version_info[:3])


def test_ruff_selects_the_builtins_rules_and_keeps_stdlib_shadowing_on():
    lint = PYPROJECT["tool"]["ruff"]["lint"]
    assert "A" in lint["select"]
    ignored = [*lint.get("ignore", []), *lint.get("extend-ignore", [])]
    for per_file in lint.get("per-file-ignores", {}).values():
        ignored.extend(per_file)
    assert not [code for code in ignored if "A005".startswith(code)], ignored
    allowed = lint.get("flake8-builtins", {})
    assert "platform" not in allowed.get("allowed-modules", [])
    assert "platform" not in allowed.get("builtins-allowed-modules", [])


def test_ruff_with_the_project_config_flags_a_platform_package(tmp_path):
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (tmp_path / "platform").mkdir()
    (tmp_path / "platform" / "__init__.py").write_text("")
    result = subprocess.run(
        [BIN / "ruff", "check", "--no-cache", "--output-format", "concise", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert (
        "platform/__init__.py:1:1: A005 Module `platform` shadows a Python standard-library module"
        in result.stdout
    )


def test_import_linter_declares_the_architecture_contracts():
    config = PYPROJECT["tool"]["importlinter"]
    assert set(config["root_packages"]) == {"tokenmill", "tenants", "workers", "gpu_inference"}
    contracts = {
        tuple(contract["source_modules"]): (contract["type"], set(contract["forbidden_modules"]))
        for contract in config["contracts"]
        if contract["type"] == "forbidden"
    }
    [layers] = [contract for contract in config["contracts"] if contract["type"] == "layers"]
    assert layers["layers"] == [
        "tokenmill.dashboard",
        "tokenmill.batches",
        "(tokenmill.gateway) : (tokenmill.metering) : (tokenmill.billing)",
        "tokenmill.finetuning",
        "tokenmill.files",
        "tokenmill.catalog",
        "tenants",
    ]
    fine_tuning_senders = (
        "tokenmill.finetuning.services",
        "tokenmill.finetuning.scheduling",
        "tokenmill.finetuning.control",
        "tokenmill.finetuning.reports",
        "tokenmill.finetuning.job_spec",
        "tokenmill.finetuning.api",
    )
    assert contracts == {
        fine_tuning_senders: ("forbidden", {"tokenmill.finetuning.tasks"}),
        ("gpu_inference",): (
            "forbidden",
            {"django", "rest_framework", "tokenmill", "tenants", "workers"},
        ),
        ("tenants",): ("forbidden", {"tokenmill", "workers"}),
        ("tokenmill", "tenants", "workers"): (
            "forbidden",
            {"torch", "transformers", "peft", "vllm"},
        ),
    }


def test_import_linter_keeps_every_contract():
    # The same invocation as `make lint`: platform/ on the path, as manage.py and pytest set it.
    result = subprocess.run(
        [BIN / "lint-imports", "--no-cache"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": "platform"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    names = [contract["name"] for contract in PYPROJECT["tool"]["importlinter"]["contracts"]]
    for name in names:
        assert f"{name} KEPT" in result.stdout
    assert f"Contracts: {len(names)} kept, 0 broken." in result.stdout


def test_importing_every_gpu_inference_module_loads_no_torch():
    modules = sorted(
        f"gpu_inference.{info.name}" for info in pkgutil.iter_modules(gpu_inference.__path__)
    )
    assert modules, "gpu_inference has no modules"
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_the_web_process_loads_no_torch():
    code = (
        "import json, sys\n"
        "sys.path.insert(0, 'platform')\n"
        "import django\n"
        "django.setup()\n"
        "import tokenmill.urls, tokenmill.asgi, workers.tasks\n"
        "from django.urls import get_resolver\n"
        "get_resolver().url_patterns\n"
        f"print(json.dumps(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)))\n"
    )
    result = run_python(code, DJANGO_SETTINGS_MODULE="tokenmill.settings", DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
