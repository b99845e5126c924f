"""Image format and size from the header, fetched by ranges."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from rekfeedback.core.imagesize import (
    BAD_DIMENSIONS, FORMAT_INVALID, TOO_LARGE, RekognitionImageLimits, probe_image, sniff_format,
)


def encode(fmt: str, size=(640, 480), **save) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 30, 200)).save(buf, format=fmt, **save)
    return buf.getvalue()


class Ranged:
    """read_range over bytes that records every request."""

    def __init__(self, data: bytes, report_total: bool = False):
        self.data, self.requests = data, []
        if report_total:
            self.total_size = None
        self._report = report_total

    def __call__(self, start: int, end: int) -> bytes:
        self.requests.append((start, end))
        if self._report:
            self.total_size = len(self.data)
        return self.data[start:end]


@pytest.mark.parametrize("fmt,name", [("JPEG", "jpeg"), ("PNG", "png")])
def test_jpeg_and_png_sizes_from_one_range(fmt, name):
    data = encode(fmt, (777, 333))
    reader = Ranged(data)
    probe = probe_image(reader, size=len(data))
    assert probe.ok, probe.error
    assert (probe.format, probe.width, probe.height) == (name, 777, 333)
    assert reader.requests == [(0, 64 * 1024)]
    assert probe.bytes_read == min(len(data), 64 * 1024)


def test_large_jpeg_reads_only_the_first_range():
    noise = Image.effect_noise((3000, 3000), 80).convert("RGB")
    buf = io.BytesIO()
    noise.save(buf, format="JPEG", quality=95)
    data = buf.getvalue()
    assert len(data) > 1_000_000
    reader = Ranged(data)
    probe = probe_image(reader, size=len(data))
    assert probe.ok and (probe.width, probe.height) == (3000, 3000)
    assert probe.bytes_read == 64 * 1024 and len(reader.requests) == 1


def test_jpeg_whose_metadata_outgrows_the_first_range_fetches_more():
    # An APP2 segment of ~60 KB per ICC chunk: the frame header sits past the first 16 KiB.
    icc = bytes(range(256)) * 400  # 102 400 bytes -> split over two APP2 segments by Pillow
    buf = io.BytesIO()
    Image.effect_noise((500, 400), 80).convert("RGB").save(buf, format="JPEG", icc_profile=icc, quality=95)
    data = buf.getvalue()
    reader = Ranged(data)
    probe = probe_image(reader, size=len(data), first_read=16 * 1024, block=16 * 1024)
    assert probe.ok, probe.error
    assert (probe.width, probe.height) == (500, 400)
    assert len(reader.requests) > 1
    assert probe.bytes_read < len(data)


def test_detection_by_content_not_extension():
    png = encode("PNG", (100, 100))
    assert probe_image(Ranged(png)).format == "png"  # whatever the key's extension says
    assert sniff_format(encode("GIF", (100, 100))) == "gif"


@pytest.mark.parametrize("data,code,needle", [
    (b"", FORMAT_INVALID, "empty"),
    (b"this is a text file, not an image\n" * 3, FORMAT_INVALID, "not an image"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 10, FORMAT_INVALID, "corrupt jpeg"),
    (b"\x89PNG\r\n\x1a\n" + b"garbage", FORMAT_INVALID, "corrupt png"),
])
def test_corrupt_and_non_images_give_a_reason(data, code, needle):
    probe = probe_image(Ranged(data), size=len(data))
    assert not probe.ok
    assert probe.error["code"] == code
    assert needle in probe.error["message"]


def test_other_formats_are_named():
    gif = encode("GIF", (100, 100))
    probe = probe_image(Ranged(gif))
    assert probe.error["code"] == FORMAT_INVALID and "gif" in probe.error["message"]


def test_limits():
    assert probe_image(Ranged(encode("PNG", (4097, 100)))).error["code"] == TOO_LARGE
    assert probe_image(Ranged(encode("PNG", (63, 200)))).error["code"] == BAD_DIMENSIONS
    assert probe_image(Ranged(encode("PNG", (64, 64)))).ok
    assert probe_image(Ranged(encode("PNG", (4096, 205)))).ok
    assert probe_image(Ranged(encode("PNG", (1280, 64)))).ok  # exactly 20:1
    assert probe_image(Ranged(encode("PNG", (2100, 100)))).error["code"] == BAD_DIMENSIONS  # 21:1
    big = Ranged(b"")
    probe = probe_image(big, size=15 * 1024 * 1024 + 1)
    assert probe.error["code"] == TOO_LARGE and big.requests == []  # not a byte read


def test_total_size_from_the_reader_enforces_the_file_limit():
    data = encode("PNG", (100, 100))
    reader = Ranged(data, report_total=True)
    limits = RekognitionImageLimits(max_file_bytes=len(data) - 1)
    probe = probe_image(reader, limits=limits)
    assert probe.error["code"] == TOO_LARGE and probe.size == len(data)


def test_truncated_jpeg_header_is_corrupt():
    data = encode("JPEG", (300, 300))[:40]
    probe = probe_image(Ranged(data))
    assert probe.error and probe.error["code"] == FORMAT_INVALID
