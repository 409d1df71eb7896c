"""Receiving a dataset upload: the multipart body is parsed as it streams in and the ``file`` part is
written straight to ``<folder>/partial-<uuid><ext>``, never buffered whole, and hashed (sha256) on
the way. The caller validates that file and renames it to ``<uuid><ext>`` only when it is accepted
(``backend.api.catalog.register``); whatever is refused, the partial file is removed.

Caps (413, nothing left on disk): the request size (checked first against Content-Length, then while
streaming), the decompressed size of a .gz, the decompressed size of a .json array (parsed whole
later, so smaller), and for JSONL the length of one line (a line that grows past the cap without a
newline is refused with its 1-based line number). The client's file name is only metadata: its
folders, control characters and NULs are dropped and it is cut to 200 characters.
"""

from __future__ import annotations

import hashlib
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from fastapi import Request
from python_multipart.exceptions import ParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from backend.api.errors import Invalid, TooLarge

EXTENSIONS = (".jsonl.gz", ".json.gz", ".jsonl", ".json", ".parquet")
FORM_OVERHEAD = 1024 * 1024  # other form fields and part headers, on top of the file cap
MAX_NAME = 200
PARTIAL = "partial-"
_FIELD = ("body", "file")


@dataclass(frozen=True)
class Upload:
    """A received upload: ``partial`` holds its bytes until it is accepted as ``<folder>/<name>``;
    size in bytes as received; sha256 of those bytes."""

    name: str
    original_name: str
    partial: Path
    size_bytes: int
    sha256: str

    @property
    def path(self) -> Path:
        """Where the accepted file lives."""
        return self.partial.with_name(self.name)


@dataclass(frozen=True)
class Caps:
    """What one upload may be: bytes received, bytes of a JSONL line, bytes once decompressed,
    bytes of a .json array (decompressed)."""

    max_bytes: int
    max_line: int
    max_inflated: int
    max_json: int


def clean_name(raw: str) -> str:
    """The last path component of ``raw`` without control characters, at most 200 characters."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".")
    if len(name) > MAX_NAME:
        name = name[: MAX_NAME - 41] + "…" + name[-40:]
    return name or "upload"


def extension(name: str) -> str:
    """The allowed extension ``name`` ends with (case-insensitive), or Invalid."""
    lowered = name.lower()
    for ext in EXTENSIONS:
        if lowered.endswith(ext):
            return ext
    raise Invalid(_FIELD, f"unsupported file type '{name[-20:]}': use {', '.join(EXTENSIONS)}", "file_type")


class LineGuard:
    """Counts lines of a byte stream and refuses one longer than ``cap`` bytes (without its newline)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.lines = 0  # complete lines seen
        self.current = 0  # bytes of the line being read

    def feed(self, data: bytes) -> None:
        parts = data.split(b"\n")
        lengths = [self.current + len(parts[0]), *map(len, parts[1:])]
        for index, length in enumerate(lengths):
            if length > self.cap:
                raise TooLarge(f"line {self.lines + index + 1} is longer than {self.cap} bytes")
        self.lines += len(parts) - 1
        self.current = lengths[-1]


class SizeGuard:
    """Caps the bytes fed to it (a .json array, which is parsed whole later)."""

    def __init__(self, cap: int) -> None:
        self.cap, self.total = cap, 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        if self.total > self.cap:
            raise TooLarge(f"a .json array is parsed whole, so at most {self.cap} bytes: use .jsonl")


class GzipGuard:
    """Decompresses a .gz stream as it arrives (all members), capping the decompressed size and
    passing the text to ``inner`` (a line or size guard) when given."""

    def __init__(self, cap: int, inner: LineGuard | SizeGuard | None) -> None:
        self.cap, self.lines, self.total = cap, inner, 0
        self.inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)

    def feed(self, data: bytes) -> None:
        try:
            while data:
                out = self.inflater.decompress(data, 1 << 20)
                self._count(out)
                data = self.inflater.unconsumed_tail
                if self.inflater.eof:
                    data = data or self.inflater.unused_data
                    self.inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        except zlib.error as exc:
            raise Invalid(_FIELD, f"not a valid gzip file ({exc})", "gzip") from exc

    def _count(self, out: bytes) -> None:
        self.total += len(out)
        if self.total > self.cap:
            raise TooLarge(f"the file decompresses to more than {self.cap} bytes")
        if self.lines is not None:
            self.lines.feed(out)


class _FilePart:
    """multipart callbacks: the first part named ``file`` goes to disk through the guards."""

    def __init__(self, folder: Path, caps: Caps) -> None:
        self.folder, self.caps, self.max_bytes = folder, caps, caps.max_bytes
        self.digest = hashlib.sha256()
        self.header_field, self.header_value, self.headers = b"", b"", {}
        self.handle: BinaryIO | None = None
        self.partial: Path | None = None
        self.upload: Upload | None = None
        self.size = 0
        self.guards: list[LineGuard | GzipGuard | SizeGuard] = []

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: setattr(self, "header_field", self.header_field + d[s:e]),
            "on_header_value": lambda d, s, e: setattr(self, "header_value", self.header_value + d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self.headers = {}

    def _header_end(self) -> None:
        self.headers[self.header_field.lower()] = self.header_value
        self.header_field, self.header_value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self.headers.get(b"content-disposition", b""))
        if params.get(b"name") != b"file" or self.upload is not None or self.handle is not None:
            return
        original = clean_name(params.get(b"filename", b"").decode("utf-8", errors="replace"))
        ext = extension(original)
        name = uuid.uuid4().hex + ext
        self.folder.mkdir(parents=True, exist_ok=True)
        self.partial = self.folder / f"{PARTIAL}{name}"
        self.handle = self.partial.open("xb")
        inner: LineGuard | SizeGuard | None = None
        if ext.startswith(".jsonl"):
            inner = LineGuard(self.caps.max_line)
        elif ext.startswith(".json"):
            inner = SizeGuard(self.caps.max_json)
        if ext.endswith(".gz"):
            self.guards = [GzipGuard(self.caps.max_inflated, inner)]
        else:
            self.guards = [inner] if inner else []
        self.upload = Upload(name, original, self.partial, 0, "")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.handle is None:
            return
        chunk = data[start:end]
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise TooLarge(f"the file is larger than {self.max_bytes} bytes")
        for guard in self.guards:
            guard.feed(chunk)
        self.digest.update(chunk)
        self.handle.write(chunk)

    def _part_end(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def discard(self) -> None:
        if self.handle is not None:
            self.handle.close()
        if self.partial is not None:
            self.partial.unlink(missing_ok=True)


async def receive(request: Request, folder: Path, caps: Caps) -> Upload:
    """Stream the multipart ``file`` field of ``request`` into a partial file in ``folder`` (see the
    module docstring); the caller must accept or remove ``Upload.partial``."""
    max_bytes = caps.max_bytes
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or not params.get(b"boundary"):
        raise Invalid(_FIELD, "send the dataset as multipart/form-data with a 'file' field", "content_type")
    limit = max_bytes + FORM_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the upload is larger than {max_bytes} bytes")
    part = _FilePart(folder, caps)
    parser = MultipartParser(params[b"boundary"], part.callbacks())  # type: ignore[arg-type]
    try:
        await _feed(request, parser, limit, max_bytes)
        if part.upload is None or part.partial is None or part.handle is not None:
            raise Invalid(_FIELD, "no complete 'file' field in the form", "missing")
    except ParseError as exc:
        part.discard()
        raise Invalid(_FIELD, f"malformed multipart body ({exc})", "multipart") from exc
    except BaseException:
        part.discard()
        raise
    upload = part.upload
    return Upload(upload.name, upload.original_name, upload.partial, part.size, part.digest.hexdigest())


async def _feed(request: Request, parser: MultipartParser, limit: int, max_bytes: int) -> None:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise TooLarge(f"the upload is larger than {max_bytes} bytes")
        parser.write(chunk)
    parser.finalize()
