"""The filesystem broker never shows a consumer a message that is still being written."""

import os

from kombu import Connection

from gpu_inference import broker


def test_a_message_appears_only_once_it_is_whole(tmp_path, monkeypatch):
    broker.use_atomic_filesystem_transport()
    folder = tmp_path / "queue"
    folder.mkdir()
    seen_before_rename = []
    real_replace = os.replace

    def replace(source, target):
        seen_before_rename.extend(name for name in os.listdir(folder) if name.endswith(".msg"))
        return real_replace(source, target)

    monkeypatch.setattr(broker.os, "replace", replace)
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    with Connection("filesystem://", transport_options=options) as connection:
        assert isinstance(connection.transport, broker.AtomicFilesystemTransport)
        queue = connection.SimpleQueue("jobs")
        queue.put({"job": "x" * 100_000})
        assert seen_before_rename == []
        assert [name.endswith(".jobs.msg") for name in os.listdir(folder)] == [True]
        assert queue.get(timeout=1).payload == {"job": "x" * 100_000}
        queue.close()
