"""The multipart parser of `POST /v1/files`: Django's, plus a word on parts it drops unsaid.

Django's multipart parser skips a part header line that is not valid UTF-8. For a
`Content-Disposition` line that means the part loses its name and is dropped, so an
upload whose file name is, say, Latin-1 would be answered "Missing required parameter:
'file'". The body is watched as the parser reads it (no second read, no copy), and
such a part is refused with a message that says what is wrong.
"""

from __future__ import annotations

from typing import IO

from django.utils.http import parse_header_parameters
from rest_framework.parsers import MultiPartParser

from tokenmill.api.errors import ApiError

#: a part's headers longer than this are not looked at (Django allows 10 KB in all)
MAX_PART_HEADERS = 10 * 1024
UNDECODABLE_FILENAME_MESSAGE = (
    "The file name is not valid UTF-8: name the file in UTF-8 (or send it as "
    "filename*=UTF-8''...) and upload it again."
)


class PartHeaderWatch:
    """A read-through view of the body that notes the fields of file parts whose
    `Content-Disposition` header is not valid UTF-8."""

    def __init__(self, stream: IO[bytes], boundary: bytes):
        self._stream = stream
        self._delimiter = b"--" + boundary
        self._pending = b""
        self.undecodable_file_fields: list[str] = []

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self._scan(chunk)
        return chunk

    def _scan(self, chunk: bytes) -> None:
        data = self._pending + chunk
        start = 0
        while True:
            at = data.find(self._delimiter, start)
            if at == -1:
                # Keep enough of the end for a delimiter that straddles two reads.
                keep = max(start, len(data) - len(self._delimiter) + 1)
                break
            headers_start = at + len(self._delimiter)
            headers_end = data.find(b"\r\n\r\n", headers_start)
            if headers_end == -1:
                if len(data) - headers_start > MAX_PART_HEADERS:
                    start = headers_start  # no headers worth reading here
                    continue
                keep = at  # the headers' end is in a later read
                break
            self._check(data[headers_start:headers_end])
            start = headers_end + 4
        self._pending = data[keep:]

    def _check(self, headers: bytes) -> None:
        for line in headers.split(b"\r\n"):
            try:
                line.decode()
                continue
            except UnicodeDecodeError:
                pass
            try:
                main, params = parse_header_parameters(line.decode("latin-1"))
            except ValueError:
                continue
            if main.startswith("content-disposition:") and "filename" in params:
                self.undecodable_file_fields.append(params.get("name", ""))


class UploadParser(MultiPartParser):
    """DRF's multipart parser, refusing a file part whose name is not valid UTF-8."""

    file_field = "file"

    def parse(self, stream, media_type=None, parser_context=None):
        boundary = parse_header_parameters(media_type or "")[1].get("boundary")
        if stream is None or not boundary:
            return super().parse(stream, media_type, parser_context)
        watched = PartHeaderWatch(stream, boundary.encode("latin-1"))
        parsed = super().parse(watched, media_type, parser_context)
        if self.file_field in watched.undecodable_file_fields:
            for _, uploads in parsed.files.lists():
                for upload in uploads:
                    upload.close()  # its temporary file goes now, not at garbage collection
            raise ApiError(
                UNDECODABLE_FILENAME_MESSAGE, code="invalid_filename", param=self.file_field
            )
        return parsed
