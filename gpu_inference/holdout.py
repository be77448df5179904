"""The held-out split of a training file, for jobs that have no validation file.

The platform (token counts, the evaluation report) and the trainer pick the same
examples from the same two numbers: how many, and the seed. Both are stated on the
job; the held-out examples are never trained on.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

SHARE = 0.1  # a tenth of the file
MINIMUM = 2  # a report on a single example says little
MAXIMUM = 200  # enough for stable figures; the rest is better spent on training
MIN_TRAINING = 8  # files smaller than MIN_TRAINING + MINIMUM keep every example for training


@dataclass(frozen=True)
class Holdout:
    count: int
    seed: int

    def indices(self, n_examples: int) -> frozenset[int]:
        """The positions (0-based, in file order) of the held-out examples."""
        if self.count >= n_examples:
            raise ValueError(f"cannot hold out {self.count} of {n_examples} examples")
        rng = random.Random(self.seed)  # noqa: S311 - a reproducible split, not a secret
        return frozenset(rng.sample(range(n_examples), self.count))

    def split(self, examples: Sequence[T]) -> tuple[list[T], list[T]]:
        """(kept for training, held out), each in file order."""
        held = self.indices(len(examples))
        kept = [example for index, example in enumerate(examples) if index not in held]
        return kept, [examples[index] for index in sorted(held)]

    def as_dict(self) -> dict[str, int]:
        return {"count": self.count, "seed": self.seed}


def holdout_size(n_examples: int) -> int:
    """How many examples a file of `n_examples` gives up for evaluation (0: too small)."""
    if n_examples < MIN_TRAINING + MINIMUM:
        return 0
    return max(MINIMUM, min(MAXIMUM, round(n_examples * SHARE)))


def file_seed(file_id: str) -> int:
    """A seed of the file's own: every job on one file holds out the same examples, so
    their reports compare like with like."""
    return int.from_bytes(hashlib.sha256(file_id.encode()).digest()[:4], "big")


def holdout_for(n_examples: int, file_id: str) -> Holdout | None:
    count = holdout_size(n_examples)
    return Holdout(count=count, seed=file_seed(file_id)) if count else None


def held_out(examples: Iterable[T], holdout: Holdout) -> list[T]:
    return holdout.split(list(examples))[1]
