"""A file's content through the real ASGI application: streamed a chunk at a time, never
read whole into memory first (a synchronous iterator under ASGI would be, with a warning,
which the suite turns into an error)."""

import os

import openai


def test_the_sdk_downloads_a_file_through_the_asgi_application(gateway, alice_key, artifact_store):
    client = openai.OpenAI(api_key=alice_key, base_url=gateway.url + "/v1", max_retries=0)
    content = os.urandom(3 * (1 << 20) + 12_345)  # several chunks and a partial one
    created = client.files.create(file=("blob.bin", content), purpose="user_data")

    with client.files.with_streaming_response.content(created.id) as response:
        assert response.headers["content-length"] == str(len(content))
        assert response.headers["content-disposition"] == 'attachment; filename="blob.bin"'
        assert response.read() == content


def test_a_missing_files_content_is_a_json_404_through_the_asgi_application(
    gateway, alice_key, artifact_store
):
    client = openai.OpenAI(api_key=alice_key, base_url=gateway.url + "/v1", max_retries=0)
    try:
        client.files.content("file-missing")
    except openai.NotFoundError as error:
        assert error.body["code"] == "not_found"
    else:
        raise AssertionError("a missing file answered")
