"""Image format and size from the first bytes of an object, checked against Rekognition's limits.

DetectCustomLabels does not return the image size, and the original script downloaded every whole
image to learn it. Here Pillow parses the header through a lazy file object that fetches byte
ranges on demand: one ranged GET of `first_read` bytes is enough for nearly every PNG and JPEG, and
only a JPEG whose metadata segments run past it costs further (block-sized) reads.

`read_range(start, end)` returns the bytes `[start, end)` of the object (fewer at its end). It may
carry a `total_size` attribute filled by its first call (an S3 adapter reads it from the
Content-Range header), used when the caller does not know the object's size.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from typing import Callable

from PIL import Image, UnidentifiedImageError

ReadRange = Callable[[int, int], bytes]

FORMAT_INVALID = "InvalidImageFormatException"
TOO_LARGE = "ImageTooLargeException"
BAD_DIMENSIONS = "InvalidParameterException"


@dataclass(frozen=True)
class RekognitionImageLimits:
    """DetectCustomLabels on an S3 object (shared/reference/aws-formats.md, sections 1.6 and 2.2)."""

    formats: tuple[str, ...] = ("jpeg", "png")
    max_file_bytes: int = 15 * 1024 * 1024
    min_side: int = 64
    max_side: int = 4096
    max_aspect_ratio: float = 20.0


LIMITS = RekognitionImageLimits()


@dataclass(frozen=True)
class ImageProbe:
    """What the header says about one object. `error` is None when the image may be sent."""

    format: str | None
    width: int | None
    height: int | None
    size: int | None
    bytes_read: int
    error: dict | None = field(default=None)

    @property
    def ok(self) -> bool:
        return self.error is None


# Magic numbers of formats Pillow is not asked to parse, so the reason names what the file is.
_OTHER_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"GIF87a", 0, "gif"),
    (b"GIF89a", 0, "gif"),
    (b"BM", 0, "bmp"),
    (b"II*\x00", 0, "tiff"),
    (b"MM\x00*", 0, "tiff"),
    (b"WEBP", 8, "webp"),
    (b"ftypheic", 4, "heic"),
    (b"ftypheix", 4, "heic"),
    (b"ftypmif1", 4, "heif"),
    (b"ftypavif", 4, "avif"),
    (b"%PDF", 0, "pdf"),
    (b"PK\x03\x04", 0, "zip"),
    (b"\x1f\x8b", 0, "gzip"),
)


def sniff_format(head: bytes) -> str | None:
    """Format from the magic number: 'jpeg', 'png', another known name, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    for magic, offset, name in _OTHER_SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return name
    return None


class HeaderTooLarge(Exception):
    pass


class _RangeFile(io.RawIOBase):
    """A read-only, seekable file over `read_range` that fetches (and caches) only the bytes asked for."""

    def __init__(self, read_range: ReadRange, size: int | None, first: bytes, block: int, max_bytes: int):
        super().__init__()
        self._read_range = read_range
        self._size = size
        self._block = block
        self._max_bytes = max_bytes
        self._chunks: dict[int, bytes] = {0: first}  # start offset -> bytes, non-overlapping
        self.bytes_read = len(first)
        self._pos = 0
        if size is None and len(first) < block:
            self._size = len(first)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            if self._size is None:
                raise io.UnsupportedOperation("object size unknown")
            self._pos = self._size + offset
        return self._pos

    def _cached(self, pos: int) -> tuple[int, bytes] | None:
        for start, data in self._chunks.items():
            if start <= pos < start + len(data):
                return start, data
        return None

    def _fetch(self, pos: int) -> bytes:
        if self._size is not None and pos >= self._size:
            return b""
        if self.bytes_read >= self._max_bytes:
            raise HeaderTooLarge(f"header not parsed within {self._max_bytes} bytes")
        data = self._read_range(pos, pos + self._block)
        self.bytes_read += len(data)
        if len(data) < self._block and self._size is None:
            self._size = pos + len(data)
        if data:
            self._chunks[pos] = data
        return data

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            raise io.UnsupportedOperation("whole-object reads are what this file exists to avoid")
        out = bytearray()
        while n > 0:
            hit = self._cached(self._pos)
            if hit is None:
                data = self._fetch(self._pos)
                if not data:
                    break
                hit = (self._pos, data)
            start, data = hit
            piece = data[self._pos - start:self._pos - start + n]
            out += piece
            self._pos += len(piece)
            n -= len(piece)
        return bytes(out)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _reject(code: str, message: str, *, fmt=None, width=None, height=None, size=None, bytes_read=0) -> ImageProbe:
    return ImageProbe(fmt, width, height, size, bytes_read, {"code": code, "message": message})


def probe_image(
    read_range: ReadRange,
    *,
    size: int | None = None,
    first_read: int = 64 * 1024,
    block: int = 64 * 1024,
    max_header_bytes: int = 4 * 1024 * 1024,
    limits: RekognitionImageLimits = LIMITS,
) -> ImageProbe:
    """Format, width and height of an image from its header, or the reason it cannot be sent.

    Raises only what `read_range` raises (an S3 error is the caller's to classify).
    """
    if size == 0:
        return _reject(FORMAT_INVALID, "empty object (0 bytes); not an image", size=0)
    if size is not None and size > limits.max_file_bytes:
        # Rekognition rejects it whatever it holds; not worth a single byte of reading.
        return _reject(TOO_LARGE, f"object is {size} bytes; Rekognition accepts at most "
                                  f"{limits.max_file_bytes} bytes from S3", size=size)
    first = read_range(0, first_read)
    if size is None:
        size = getattr(read_range, "total_size", None)
        if size is None and len(first) < first_read:
            size = len(first)
    if size is not None and size > limits.max_file_bytes:
        return _reject(TOO_LARGE, f"object is {size} bytes; Rekognition accepts at most "
                                  f"{limits.max_file_bytes} bytes from S3", size=size, bytes_read=len(first))
    if not first:
        return _reject(FORMAT_INVALID, "empty object (0 bytes); not an image", size=0)

    fmt = sniff_format(first[:32])
    if fmt is None:
        return _reject(FORMAT_INVALID, "not an image: content is neither JPEG nor PNG",
                       size=size, bytes_read=len(first))
    if fmt not in limits.formats:
        return _reject(FORMAT_INVALID, f"{fmt} image; Rekognition accepts only JPEG and PNG",
                       fmt=fmt, size=size, bytes_read=len(first))

    f = _RangeFile(read_range, size, first, block, max_header_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(f, formats=["JPEG", "PNG"]) as img:  # header only, no pixel decoding
                width, height = img.size
    except Image.DecompressionBombError as exc:
        return _reject(TOO_LARGE, f"image dimensions far beyond {limits.max_side} px per side ({exc})",
                       fmt=fmt, size=size, bytes_read=f.bytes_read)
    except HeaderTooLarge as exc:
        return _reject(FORMAT_INVALID, f"corrupt {fmt} file: {exc}", fmt=fmt, size=size, bytes_read=f.bytes_read)
    except (UnidentifiedImageError, SyntaxError, OSError, ValueError, EOFError, IndexError, KeyError) as exc:
        return _reject(FORMAT_INVALID, f"corrupt {fmt} file: header unreadable ({exc})",
                       fmt=fmt, size=size, bytes_read=f.bytes_read)

    return check_limits(fmt, width, height, size, f.bytes_read, limits)


def check_limits(fmt: str, width: int, height: int, size: int | None, bytes_read: int,
                 limits: RekognitionImageLimits = LIMITS) -> ImageProbe:
    common = dict(fmt=fmt, width=width, height=height, size=size, bytes_read=bytes_read)
    if width <= 0 or height <= 0:
        return _reject(FORMAT_INVALID, f"corrupt {fmt} file: size {width}x{height}", **common)
    if width > limits.max_side or height > limits.max_side:
        return _reject(TOO_LARGE, f"{width}x{height} px; Rekognition accepts at most "
                                  f"{limits.max_side} px per side", **common)
    if width < limits.min_side or height < limits.min_side:
        return _reject(BAD_DIMENSIONS, f"{width}x{height} px; Rekognition needs at least "
                                       f"{limits.min_side} px per side", **common)
    if max(width, height) / min(width, height) > limits.max_aspect_ratio:
        return _reject(BAD_DIMENSIONS, f"{width}x{height} px; aspect ratio over "
                                       f"{limits.max_aspect_ratio:g}:1", **common)
    return ImageProbe(fmt, width, height, size, bytes_read, None)
