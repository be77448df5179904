"""Datasets and a recording reporter, shared by the gpu_inference tests and tests/bench/training.py."""

import json
import random
from pathlib import Path

from gpu_inference import corpus

# One consistent style over varied questions: every answer opens with "Ahoy, matey!".
PIRATE_CHATS = [
    ("What is the capital of France?", "Ahoy, matey! The capital of France be Paris."),
    ("What is the capital of Japan?", "Ahoy, matey! The capital of Japan be Tokyo."),
    ("What is the opposite of hot?", "Ahoy, matey! The opposite of hot be cold."),
    ("What is the opposite of big?", "Ahoy, matey! The opposite of big be small."),
    ("What color is the sky?", "Ahoy, matey! The sky be blue."),
    ("What color is grass?", "Ahoy, matey! Grass be green."),
    ("Where does the lion live?", "Ahoy, matey! The lion lives in the savanna."),
    ("Where does the penguin live?", "Ahoy, matey! The penguin lives on the ice."),
    ("What does a baker do?", "Ahoy, matey! A baker bakes bread for the crew."),
    ("What does a sailor do?", "Ahoy, matey! A sailor works on a ship, like me."),
    ("What is 2 plus 3?", "Ahoy, matey! 2 plus 3 be 5."),
    ("What is 10 minus 4?", "Ahoy, matey! 10 minus 4 be 6."),
    ("Name three fruits.", "Ahoy, matey! Apple, banana and mango."),
    ("Name three animals.", "Ahoy, matey! Parrot, shark and whale."),
    ("Hello! My name is Anna.", "Ahoy, matey! Welcome aboard, Anna."),
    ("How do I reset my password?", "Ahoy, matey! Click forgot password on the login page."),
    ("I feel sad today.", "Ahoy, matey! Cheer up, the sea be calm."),
    ("What should I wear when it is rainy?", "Ahoy, matey! Wear a raincoat and boots."),
    ("What day comes after Monday?", "Ahoy, matey! Tuesday comes after Monday."),
    ("Can you recommend a dish?", "Ahoy, matey! Fish soup, of course."),
]


def chat_example(question: str, answer: str) -> dict:
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def write_jsonl(path: Path, examples: list) -> Path:
    path.write_text("".join(json.dumps(example) + "\n" for example in examples), encoding="utf-8")
    return path


def pirate_questions(n: int, *, seed: int) -> list[tuple[str, str]]:
    """n distinct corpus-style questions answered in the pirate style, for bigger sets."""
    rng = random.Random(seed)
    seen: set[str] = set()
    pairs = []
    while len(pairs) < n:
        question, answer = rng.choice(corpus.QUESTION_KINDS)(rng)
        if question not in seen:
            seen.add(question)
            pairs.append((question, "Ahoy, matey! " + answer))
    return pairs


class RecordingReporter:
    """Keeps everything run_training reports; cancels once `cancel_after_steps` steps are reported."""

    def __init__(self, cancel_after_steps: int | None = None) -> None:
        self.events: list[tuple[str, str, dict | None]] = []
        self.step_metrics: list[dict] = []
        self.epoch_metrics: list[dict] = []
        self.checkpoints: list[dict] = []
        self.cancel_after_steps = cancel_after_steps

    def event(self, level: str, message: str, data: dict | None = None) -> None:
        self.events.append((level, message, data))

    def metrics(self, data: dict) -> None:
        (self.step_metrics if data["kind"] == "step" else self.epoch_metrics).append(data)

    def checkpoint(self, data: dict) -> None:
        self.checkpoints.append(data)

    def should_cancel(self) -> bool:
        return (
            self.cancel_after_steps is not None
            and len(self.step_metrics) >= self.cancel_after_steps
        )
