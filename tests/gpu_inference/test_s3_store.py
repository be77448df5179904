"""What only the S3 backend has to prove: multipart streaming in bounded memory, and an
interrupted multipart upload that leaves nothing visible (and nothing billed)."""

import hashlib
import tracemalloc

import pytest

from gpu_inference.artifacts import open_store
from gpu_inference.artifacts.s3 import PART_SIZE, S3ArtifactStore

MIB = 1024 * 1024
LARGE = 5 * PART_SIZE + 3 * MIB  # six parts, the last one short


@pytest.fixture
def store(s3_store_url, tmp_path) -> S3ArtifactStore:
    return open_store(s3_store_url, cache_dir=tmp_path / "cache")


def generated(total: int, chunk: int = MIB):
    """`total` bytes made as they are read, never all in memory (Django's upload.chunks())."""
    block = bytes(range(256)) * (chunk // 256)
    sent = 0
    while sent < total:
        piece = block[: min(chunk, total - sent)]
        sent += len(piece)
        yield piece


def expected_digest(total: int) -> str:
    digest = hashlib.sha256()
    for piece in generated(total):
        digest.update(piece)
    return digest.hexdigest()


def peak_memory(work) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_upload_goes_in_parts_with_one_part_in_memory(store):
    result = {}

    def upload():
        result["stored"] = store.write_stream("files/big/original", generated(LARGE))

    peak = peak_memory(upload)
    assert result["stored"] == (LARGE, expected_digest(LARGE))
    # The part being built and the part being sent: far below the 43 MiB uploaded.
    assert peak < 3 * PART_SIZE, f"peak {peak / MIB:.1f} MiB"
    head = store.client.head_object(Bucket=store.bucket, Key=f"{store.prefix}/files/big/original")
    assert head["ContentLength"] == LARGE
    assert head["ETag"].strip('"').endswith("-6")  # S3's mark of a six-part upload


def test_a_download_streams_in_bounded_memory(store):
    store.write_stream("files/big/original", generated(LARGE))
    digest = hashlib.sha256()

    def download():
        for chunk in store.iter_chunks("files/big/original"):
            digest.update(chunk)

    peak = peak_memory(download)
    assert digest.hexdigest() == expected_digest(LARGE)
    assert peak < 4 * MIB, f"peak {peak / MIB:.1f} MiB"


def test_a_small_upload_is_one_request(store):
    store.write_stream("files/small/original", generated(PART_SIZE - 1))
    head = store.client.head_object(Bucket=store.bucket, Key=f"{store.prefix}/files/small/original")
    assert "-" not in head["ETag"]


def interrupted(total: int):
    yield from generated(total)
    raise ConnectionResetError("the client went away mid-upload")


def test_an_interrupted_multipart_upload_is_aborted_and_leaves_nothing(store, s3_server):
    store.write_bytes("files/f/original", b"the earlier version")
    with pytest.raises(ConnectionResetError):
        store.write_stream("files/f/original", interrupted(3 * PART_SIZE + MIB))
    # Three parts had been sent: the upload is aborted, not left open (and billed).
    assert s3_server.open_uploads(store.prefix) == []
    assert store.read_bytes("files/f/original") == b"the earlier version"
    with pytest.raises(ConnectionResetError):
        store.write_stream("files/g/original", interrupted(2 * PART_SIZE))
    assert not store.exists("files/g")
    assert s3_server.open_uploads(store.prefix) == []


def test_an_upload_over_the_limit_stops_at_the_limit_and_aborts(store, s3_server):
    sent = []

    def counted():
        for piece in generated(10 * PART_SIZE):
            sent.append(len(piece))
            yield piece

    with pytest.raises(Exception, match="larger than"):
        store.write_stream("files/huge/original", counted(), max_bytes=2 * PART_SIZE)
    assert sum(sent) <= 2 * PART_SIZE + MIB  # it stopped reading at the limit
    assert not store.exists("files/huge")
    assert s3_server.open_uploads(store.prefix) == []


def test_stores_with_different_prefixes_do_not_see_each_other(s3_server, tmp_path):
    first = open_store(f"s3://{s3_server.bucket}/tenant-a-test", cache_dir=tmp_path)
    second = open_store(f"s3://{s3_server.bucket}/tenant-b-test", cache_dir=tmp_path)
    first.write_bytes("files/x/original", b"a")
    assert not second.exists("files/x/original")
    second.delete("files")
    assert first.read_bytes("files/x/original") == b"a"
    first.delete("files")
