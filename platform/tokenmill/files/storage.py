"""Where files live in the artifact store: `files/<file-id>/original` and `.../normalized.jsonl`."""

from django.conf import settings

from gpu_inference.artifacts import ArtifactStore, open_store


def get_artifact_store() -> ArtifactStore:
    # Read at each call, so a settings override (tests, a management command) takes effect.
    return open_store(settings.ARTIFACT_STORE_URL, cache_dir=settings.ARTIFACT_CACHE_DIR)


def file_folder(file_id: str) -> str:
    return f"files/{file_id}"


def original_key(file_id: str) -> str:
    return f"{file_folder(file_id)}/original"


def normalized_key(file_id: str) -> str:
    return f"{file_folder(file_id)}/normalized.jsonl"
