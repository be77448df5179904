"""Fixtures for gpu_inference: a quick demo model built once per session, and a recording reporter."""

from pathlib import Path

import pytest

from gpu_inference.demo_model import build_demo_model
from tests.gpu_inference.helpers import PIRATE_CHATS, RecordingReporter, chat_example, write_jsonl

# Enough steps for the model to produce chat-shaped answers (a few seconds); the
# properly trained model is only used by the slow test.
QUICK_STEPS = 40


@pytest.fixture(scope="session")
def quick_model(tmp_path_factory) -> Path:
    return build_demo_model(
        tmp_path_factory.mktemp("models") / "tiny-chat-quick", steps=QUICK_STEPS
    )


@pytest.fixture
def pirate_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "pirate.jsonl", [chat_example(q, a) for q, a in PIRATE_CHATS])


@pytest.fixture
def reporter() -> RecordingReporter:
    return RecordingReporter()
