"""Imported by a test's worker (`celery worker --include`): validating a file named
crash.jsonl kills the pool process that runs it, as the kernel kills a process out of
memory. Each kill is noted in the folder CRASH_LOG_DIR names."""

import os
import signal
import uuid
from pathlib import Path

from tokenmill.files import services

CRASHING_FILENAME = "crash.jsonl"
_validate = services.file_validate


def _validate_or_die(*, tenant, file):
    if file.filename == CRASHING_FILENAME:
        (Path(os.environ["CRASH_LOG_DIR"]) / uuid.uuid4().hex).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return _validate(tenant=tenant, file=file)


services.file_validate = _validate_or_die
