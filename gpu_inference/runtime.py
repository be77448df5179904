"""Process-wide torch settings.

One thread per process is the default because the web server, the workers and the
model server share the machine's cores: measured with other processes on two cores,
`torch.set_num_threads(2)` trained 3-8x slower than 1 thread (see NOTES-ENV.md).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

THREADS_VARIABLE = "TOKENMILL_TORCH_THREADS"
DEFAULT_THREADS = 1


def torch_threads_setting() -> int:
    raw = os.environ.get(THREADS_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_THREADS
    try:
        threads = int(raw)
    except ValueError:
        raise ValueError(f"{THREADS_VARIABLE} must be a positive integer, got {raw!r}") from None
    if threads < 1:
        raise ValueError(f"{THREADS_VARIABLE} must be a positive integer, got {raw!r}")
    return threads


def configure_torch(threads: int | None = None) -> int:
    """Set torch's intra-op threads (from TOKENMILL_TORCH_THREADS unless given); returns the number."""
    if threads is None:
        threads = torch_threads_setting()
    elif threads < 1:
        raise ValueError(f"threads must be positive, got {threads}")
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextmanager
def peft_deprecation_silenced() -> Iterator[None]:
    """Around peft calls: peft 0.21 reads transformers 5's deprecated `is_gradient_checkpointing`.

    The FutureWarning is theirs to fix and would fail a warnings-as-errors run; only
    that one message is ignored.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )
        yield
