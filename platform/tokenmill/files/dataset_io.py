"""Reading an uploaded dataset line by line, and writing the normalized file all-or-nothing."""

from __future__ import annotations

import codecs
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

#: the longest line read whole, unless the caller sets another limit
MAX_LINE_BYTES = 1024 * 1024
_SKIP_CHUNK = 64 * 1024


class TextLines:
    """The file's lines, decoded one at a time so memory stays flat whatever the file's size.

    Lines keep their line ending (the csv module needs it inside quoted fields).
    A line longer than ``max_line_bytes`` is never held whole: it goes to
    ``on_long_line(line_no)`` and is skipped, read in small chunks up to its end.
    Encoding problems go to ``on_file_error(code, message)``; binary content
    stops the read, and ``stopped`` says so. ``line_no`` is the 1-based number
    of the line last yielded (or skipped).
    """

    def __init__(
        self,
        raw: IO[bytes],
        *,
        on_file_error: Callable[[str, str], None],
        on_long_line: Callable[[int], None] | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
    ):
        self._raw = raw
        self._on_file_error = on_file_error
        self._on_long_line = on_long_line
        self.max_line_bytes = max_line_bytes
        self.line_no = 0
        self.stopped = False

    def _raw_lines(self) -> Iterator[tuple[bytes, int]]:
        """Each line's bytes (empty for a line too long to hold) and its length in the file."""
        while True:
            raw_line = self._raw.readline(self.max_line_bytes + 1)
            if not raw_line:
                return
            if len(raw_line) <= self.max_line_bytes or raw_line.endswith(b"\n"):
                yield raw_line, len(raw_line)
                continue
            skipped = len(raw_line)
            while not raw_line.endswith(b"\n"):
                raw_line = self._raw.readline(_SKIP_CHUNK)
                if not raw_line:
                    break
                skipped += len(raw_line)
            yield b"", skipped

    def __iter__(self) -> Iterator[str]:
        offset = 0
        encoding_reported = False
        for raw_line, size in self._raw_lines():
            self.line_no += 1
            if not raw_line:
                offset += size
                if self._on_long_line is not None:
                    self._on_long_line(self.line_no)
                continue
            if self.line_no == 1 and raw_line.startswith(
                (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
            ):
                self._stop("not_utf8", "the file is encoded as UTF-16; save it as UTF-8")
                return
            nul = raw_line.find(b"\x00")
            if nul != -1:
                self._stop(
                    "binary_file",
                    f"the file contains binary data (a NUL byte on line {self.line_no}, "
                    f"byte offset {offset + nul}); upload a UTF-8 text file",
                )
                return
            try:
                text = raw_line.decode("utf-8")
            except UnicodeDecodeError as error:
                # Go on with replacement characters, so the report still covers every line.
                if not encoding_reported:
                    self._on_file_error(
                        "not_utf8",
                        f"the file is not valid UTF-8: byte 0x{raw_line[error.start]:02x} on line "
                        f"{self.line_no} (byte offset {offset + error.start}) cannot be decoded; "
                        "save the file as UTF-8",
                    )
                    encoding_reported = True
                text = raw_line.decode("utf-8", errors="replace")
            if self.line_no == 1:
                text = text.removeprefix("\ufeff")  # spreadsheets write a byte order mark
            offset += size
            yield text

    def _stop(self, code: str, message: str) -> None:
        self._on_file_error(code, message)
        self.stopped = True


class NormalizedWriter:
    """Writes JSONL beside ``target``; only ``finish(keep=True)`` renames it into place.

    With ``keep=False`` (an invalid dataset) ``target`` is removed too, so a file
    left from an earlier upload cannot pass for this one. With no target, it
    writes nothing.
    """

    def __init__(self, target: Path | None):
        self.target = target
        self._file: IO[str] | None = None

    def __enter__(self) -> NormalizedWriter:
        if self.target is not None:
            self._file = tempfile.NamedTemporaryFile(  # closed by finish() or __exit__
                "w",
                encoding="utf-8",
                dir=self.target.parent,
                prefix=f".{self.target.name}.",
                suffix=".partial",
                delete=False,
            )
        return self

    def write(self, example: dict[str, Any]) -> None:
        if self._file is not None:
            # ASCII escapes keep lone surrogates writable and U+2028 from splitting a line.
            self._file.write(json.dumps(example) + "\n")

    def finish(self, *, keep: bool) -> None:
        if self._file is None or self.target is None:
            return
        partial, self._file = self._file, None
        if keep:
            partial.flush()
            os.fsync(partial.fileno())
            partial.close()
            os.replace(partial.name, self.target)
        else:
            partial.close()
            os.unlink(partial.name)
            self.target.unlink(missing_ok=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._file is not None:  # an exception escaped before finish()
            self._file.close()
            os.unlink(self._file.name)
            self._file = None
