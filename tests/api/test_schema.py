"""The OpenAPI schema at /api/schema/ describes every API endpoint the URLconf defines."""

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from django.urls import URLPattern, URLResolver, get_resolver

ROOT = Path(__file__).resolve().parents[2]
API_PREFIXES = ("/v1/", "/api/v1/")
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def _walk(patterns, prefix: str = "/"):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route, pattern


def api_operations() -> dict[str, set[str]]:
    """{"/v1/models/{model_id}": {"get"}, ...} for every API route in the URLconf."""
    operations = {}
    for route, pattern in _walk(get_resolver().url_patterns):
        if not route.startswith(API_PREFIXES):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        view_class = pattern.callback.view_class
        operations[path] = {method for method in HTTP_METHODS if hasattr(view_class, method)}
    return operations


def fetch_schema(client) -> dict:
    response = client.get("/api/schema/")
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    return yaml.safe_load(response.content)


def test_the_url_walk_finds_the_known_endpoints():
    # Guards the walk itself: if it found nothing, the test below would prove nothing.
    operations = api_operations()
    assert {"get"} <= operations["/v1/models"]
    assert {"get"} <= operations["/v1/models/{model_id}"]
    assert operations["/api/v1/api-keys"] == {"get", "post"}
    assert operations["/api/v1/members/{object_id}"] == {"get", "patch", "delete"}
    assert operations["/api/v1/organization"] == {"get", "patch"}


def test_schema_is_served_without_authentication(client, db):
    schema = fetch_schema(client)
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Tokenmill API"


def test_schema_ignores_a_bad_key(api, db):
    assert fetch_schema(api("tm-not-a-real-key"))["info"]["version"] == "1.0.0"


def test_schema_lists_every_api_endpoint_and_method(client, db):
    schema = fetch_schema(client)
    documented = {
        path: {method for method in item if method in HTTP_METHODS}
        for path, item in schema["paths"].items()
        if path.startswith(API_PREFIXES)
    }
    assert documented == api_operations()


def test_every_api_operation_requires_the_bearer_key(client, db):
    schema = fetch_schema(client)
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from the dashboard or `manage.py create_api_key`.",
    }
    for path in api_operations():
        for method, operation in schema["paths"][path].items():
            if method in HTTP_METHODS:
                assert operation["security"] == [{"ApiKey": []}], (method, path)


def test_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    result = subprocess.run(
        [
            *(sys.executable, "manage.py", "spectacular"),
            *("--validate", "--fail-on-warn", "--file", str(target)),
        ],
        cwd=ROOT,
        env={**os.environ, "DEBUG": "true"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr
    assert "Error" not in result.stderr
    assert set(api_operations()) <= set(yaml.safe_load(target.read_text())["paths"])


def test_api_docs_render(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"swagger-ui" in response.content
    assert b"/api/schema/" in response.content
