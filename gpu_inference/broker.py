"""kombu's filesystem broker, with messages that appear whole.

The stock transport opens the message file under its final name and then writes it,
so a consumer polling the folder can pick up an empty file, fail to decode it and
take its worker down. Here a message is written under a name no consumer matches
and renamed into place, which is atomic on one filesystem.

Every process that publishes or consumes through `filesystem://` (web, Celery
workers, serving agents) calls `use_atomic_filesystem_transport()` first.
"""

import os
import tempfile
import uuid
from pathlib import Path
from time import monotonic

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

# A consumer takes only files named `<stamp>_<uuid>.<queue>.msg`; ".partial-…" never matches.
PARTIAL_PREFIX = ".partial-"


class AtomicChannel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        fd, partial = tempfile.mkstemp(dir=self.data_folder_out, prefix=PARTIAL_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(str_to_bytes(dumps(payload)))
            os.replace(partial, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            if os.path.exists(partial):
                os.unlink(partial)
            raise filesystem.ChannelError(f"Cannot add {name!r} to the broker folder") from exc


class AtomicFilesystemTransport(filesystem.Transport):
    Channel = AtomicChannel


def use_atomic_filesystem_transport() -> None:
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:AtomicFilesystemTransport"


def filesystem_transport_options(folder: Path) -> dict:
    """The filesystem broker under `folder` (the embedded default's var/broker)."""
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
