"""An upload validated by a real Celery worker process, through the real broker."""

import time

import pytest
from django.conf import settings

from tests.files.helpers import chat_lines, jsonl
from tests.processes import start_worker, stop_worker, store_environment, worker_database_url
from tokenmill.files.models import File

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_default_queue_worker_validates_an_upload(
    upload, acme, artifact_store, demo_model_path, encoder
):
    worker = start_worker(
        "default",
        env={
            "DATABASE_URL": worker_database_url(),
            **store_environment(settings),
            "MODEL_ROOT": str(settings.MODEL_ROOT),
        },
    )
    try:
        response = upload(jsonl(chat_lines(12)))
        assert response.status_code == 200
        assert response.json()["status"] == "uploaded"  # not eager: the worker has it
        file = File.unscoped.get(public_id=response.json()["id"])

        deadline = time.monotonic() + 90
        while file.status == File.Status.UPLOADED and time.monotonic() < deadline:
            assert worker.poll() is None, "the worker died"
            time.sleep(0.2)
            file.refresh_from_db()

        assert file.status == File.Status.PROCESSED, file.status_details
        assert file.validation["statistics"]["n_examples"] == 12
        assert artifact_store.size(file.normalized_key) > 0
    finally:
        stop_worker(worker)
