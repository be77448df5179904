"""A stored file's bytes as an HTTP download, for the API and the dashboard alike."""

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, HttpRequest, StreamingHttpResponse
from django.utils.http import content_disposition_header

from tokenmill.files import storage
from tokenmill.files.models import File

READ_CHUNK = 1 << 20


async def _chunks_of(stored):
    """The object's bytes for an ASGI response, a chunk at a time off the event loop: a
    synchronous iterator there would be read whole into memory before the first byte."""
    read = sync_to_async(stored.read, thread_sensitive=False)
    try:
        while chunk := await read(READ_CHUNK):
            yield chunk
    finally:
        await sync_to_async(stored.close, thread_sensitive=False)()


def content_response(request: HttpRequest, file: File) -> StreamingHttpResponse | FileResponse:
    """The file as an attachment, streamed from the artifact store.

    Raises FileNotFoundError when its bytes are gone (deleted since the row was read).
    """
    content = storage.get_artifact_store().open(file.storage_key)
    if isinstance(request, ASGIRequest):
        response = StreamingHttpResponse(
            _chunks_of(content), content_type="application/octet-stream"
        )
        response["Content-Disposition"] = content_disposition_header(True, file.filename)
    else:
        response = FileResponse(
            content,
            as_attachment=True,
            filename=file.filename,
            content_type="application/octet-stream",
        )
    # A streamed object (S3) has no size of its own to read; the row knows it.
    response["Content-Length"] = str(file.bytes)
    return response
