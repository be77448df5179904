"""The artifact store's contract, on both backends: a local folder and S3 (moto's server).

Whatever code uses the store may rely on exactly this, and nothing else: the same
calls give the same answers whichever backend ARTIFACT_STORE_URL names.
"""

import hashlib
import threading

import pytest

from gpu_inference.artifacts import ArtifactStore, ArtifactTooLarge, open_store


@pytest.fixture
def store(any_store_url, tmp_path) -> ArtifactStore:
    return open_store(any_store_url, cache_dir=tmp_path / "cache")


def failing_stream(chunks: list[bytes]):
    yield from chunks
    raise ConnectionResetError("the client went away")


def test_a_stream_is_stored_and_read_back_with_its_size_and_digest(store):
    chunks = [b"first line\n", b"second line\n" * 1000]
    size, digest = store.write_stream("files/f-1/original", iter(chunks))
    body = b"".join(chunks)
    assert (size, digest) == (len(body), hashlib.sha256(body).hexdigest())
    assert store.read_bytes("files/f-1/original") == body
    with store.open("files/f-1/original") as stored:
        assert stored.read(10) == b"first line"
        assert stored.read() == body[10:]
    assert b"".join(store.iter_chunks("files/f-1/original", 7)) == body


def test_exists_and_size_cover_objects_and_folders(store):
    store.write_bytes("jobs/j/attempt-1/final/adapter_config.json", b"{}")
    store.write_bytes("jobs/j/attempt-1/final/adapter_model.safetensors", b"w" * 100)
    assert store.exists("jobs/j/attempt-1/final/adapter_config.json")
    assert store.exists("jobs/j/attempt-1/final")
    assert store.exists("jobs/j")
    assert not store.exists("jobs/j/attempt-2")
    assert not store.exists("jobs/j/attempt-1/fin")  # a folder is a whole name, not a prefix
    assert store.size("jobs/j/attempt-1/final/adapter_config.json") == 2
    assert store.size("jobs/j") == 102
    assert store.size("jobs/absent") == 0


def test_a_folder_lists_its_files_sorted_and_deletes_whole(store):
    for key in ("m/b/two", "m/a", "m/b/one", "mx/other"):
        store.write_bytes(key, key.encode())
    assert store.list_files("m") == ["m/a", "m/b/one", "m/b/two"]
    assert store.list_files("m/") == ["m/a", "m/b/one", "m/b/two"]
    store.delete("m")
    assert not store.exists("m")
    assert store.read_bytes("mx/other") == b"mx/other"  # a sibling with the same start stays
    with pytest.raises(FileNotFoundError):
        store.list_files("m")
    store.delete("m")  # deleting what is gone is fine
    store.delete("mx/other")
    assert not store.exists("mx")


def test_what_does_not_exist_is_file_not_found(store):
    with pytest.raises(FileNotFoundError):
        store.open("files/none/original")
    with pytest.raises(FileNotFoundError):
        store.read_bytes("files/none/original")
    with pytest.raises(FileNotFoundError), store.local_copy("files/none/original"):
        pass


@pytest.mark.parametrize("key", ["../outside", "a/../../b", "/absolute", "a//b", "", "a/./b"])
def test_a_key_cannot_escape_the_store(store, key):
    with pytest.raises(ValueError, match="artifact key"):
        store.write_bytes(key, b"x")


def test_a_failed_stream_leaves_nothing_and_keeps_the_object_it_would_replace(store):
    with pytest.raises(ConnectionResetError):
        store.write_stream("files/f/new", failing_stream([b"half of it"]))
    assert not store.exists("files/f/new")
    assert not store.exists("files/f")

    store.write_bytes("files/f/kept", b"version 1")
    with pytest.raises(ConnectionResetError):
        store.write_stream("files/f/kept", failing_stream([b"version 2, cut"]))
    assert store.read_bytes("files/f/kept") == b"version 1"
    assert store.list_files("files/f") == ["files/f/kept"]


def test_a_stream_over_its_limit_is_refused_and_leaves_nothing(store):
    with pytest.raises(ArtifactTooLarge):
        store.write_stream("files/big/original", iter([b"x" * 600, b"y" * 600]), max_bytes=1000)
    assert not store.exists("files/big")


def test_create_exclusive_creates_once(store):
    key = "jobs/j/control/attempt-1/claim"
    assert store.create_exclusive(key, b"host-a")
    assert not store.create_exclusive(key, b"host-b")
    assert store.read_bytes(key) == b"host-a"


def test_create_exclusive_has_one_winner_among_racing_workers(store):
    key = "jobs/j/control/attempt-2/claim"
    results: list[bool] = []
    start = threading.Barrier(6)

    def claim(name: str) -> None:
        start.wait()
        results.append(store.create_exclusive(key, name.encode()))

    threads = [threading.Thread(target=claim, args=(f"host-{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    assert store.read_bytes(key).startswith(b"host-")


def test_a_local_copy_is_a_real_file_with_the_bytes(store, tmp_path):
    store.write_bytes("files/f/normalized.jsonl", b'{"a": 1}\n')
    with store.local_copy("files/f/normalized.jsonl") as path:
        assert path.is_file()
        assert path.read_bytes() == b'{"a": 1}\n'


def test_folders_go_up_and_come_back_down(store, tmp_path):
    local = tmp_path / "trained"
    (local / "nested").mkdir(parents=True)
    (local / "adapter_config.json").write_text("{}")
    (local / "nested" / "weights.bin").write_bytes(b"\x00\x01" * 500)
    keys = store.put_folder("jobs/j/attempt-1/final", local)
    assert keys == [
        "jobs/j/attempt-1/final/adapter_config.json",
        "jobs/j/attempt-1/final/nested/weights.bin",
    ]
    assert store.list_files("jobs/j/attempt-1/final") == keys

    copied = store.fetch_folder("jobs/j/attempt-1/final", tmp_path / "cache" / "adapter")
    assert sorted(
        path.relative_to(tmp_path / "cache" / "adapter").as_posix() for path in copied
    ) == [
        "adapter_config.json",
        "nested/weights.bin",
    ]
    assert (tmp_path / "cache" / "adapter" / "nested" / "weights.bin").read_bytes() == (
        b"\x00\x01" * 500
    )


def test_the_store_says_where_it_is_and_which_host_folders_it_keeps(store, any_store_url):
    assert store.describe().removeprefix("file://") == any_store_url
    assert all(folder.is_absolute() for folder in store.host_folders())
