"""A zip archive that is exactly its members, and nothing else.

``zipfile`` (like most readers) finds the central directory from the end and tolerates bytes
before the first member, between members, between the directory and its end record, and after
it. Each of those is a place to hide a second archive or a pickle that another reader would see.
This check walks the archive's bytes in order: the first local header at offset 0, each member's
header, data and data descriptor directly followed by the next, the central directory directly
after the last member, then only the zip64 end records and the end record, ending exactly at the
end of the file with no comment.
"""

from __future__ import annotations

import contextlib
import struct
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from shim.findings import Finding

_LOCAL = b"PK\x03\x04"
_DESCRIPTOR = b"PK\x07\x08"
_END = b"PK\x05\x06"
_ZIP64_END = b"PK\x06\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_END_SIZE = 22
_ZIP64_LOCATOR_SIZE = 20
_FLAG_ENCRYPTED = 0x1
_FLAG_DESCRIPTOR = 0x8


class LayoutError(Exception):
    """The archive has bytes that belong to no member, or a malformed structure."""


@dataclass(frozen=True)
class Member:
    info: zipfile.ZipInfo
    data_offset: int


def _read_at(handle: BinaryIO, offset: int, size: int) -> bytes:
    handle.seek(offset)
    return handle.read(size)


def _directory_bounds(handle: BinaryIO, file_size: int) -> tuple[int, int]:
    """(offset of the central directory, offset where its end records start)."""
    if file_size < _END_SIZE:
        raise LayoutError("is too short to be a zip archive")
    end = _read_at(handle, file_size - _END_SIZE, _END_SIZE)
    if end[:4] != _END:
        raise LayoutError("has bytes after the zip end record (a comment or appended data)")
    _, _, _, _, _, cd_size, cd_offset, comment = struct.unpack("<4s4H2LH", end)
    if comment:
        raise LayoutError("has a zip comment")
    records_start = file_size - _END_SIZE
    if cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF or records_start >= _ZIP64_LOCATOR_SIZE:
        locator = _read_at(handle, records_start - _ZIP64_LOCATOR_SIZE, _ZIP64_LOCATOR_SIZE)
        if locator[:4] == _ZIP64_LOCATOR:
            zip64_offset = struct.unpack("<4sLQL", locator)[2]
            record = _read_at(handle, zip64_offset, 56)
            if record[:4] != _ZIP64_END:
                raise LayoutError("has a zip64 locator that points at no zip64 end record")
            record_size = struct.unpack("<Q", record[4:12])[0] + 12
            if zip64_offset + record_size != records_start - _ZIP64_LOCATOR_SIZE:
                raise LayoutError("has bytes between the zip64 end record and its locator")
            cd_size, cd_offset = struct.unpack("<QQ", record[40:56])
            records_start = zip64_offset
    if cd_offset + cd_size != records_start:
        raise LayoutError("has bytes between the central directory and the end record")
    return cd_offset, cd_offset + cd_size


def declared_entries(handle: BinaryIO, file_size: int) -> int:
    """How many members the end record (or its zip64 record) declares, read before any parser
    builds the central directory: a cap checked here costs nothing however many entries there are.
    0 when there is no end record at the end (``check_zip_layout`` then says what is wrong)."""
    if file_size < _END_SIZE:
        return 0
    end = _read_at(handle, file_size - _END_SIZE, _END_SIZE)
    if end[:4] != _END:
        return 0
    entries = struct.unpack("<H", end[10:12])[0]
    if entries == 0xFFFF and file_size >= _END_SIZE + _ZIP64_LOCATOR_SIZE:
        locator = _read_at(handle, file_size - _END_SIZE - _ZIP64_LOCATOR_SIZE, _ZIP64_LOCATOR_SIZE)
        if locator[:4] == _ZIP64_LOCATOR:
            record = _read_at(handle, struct.unpack("<4sLQL", locator)[2], 56)
            if record[:4] == _ZIP64_END and len(record) == 56:
                entries = struct.unpack("<Q", record[32:40])[0]
    return entries


def check_zip_layout(handle: BinaryIO, archive: zipfile.ZipFile, file_size: int) -> list[Member]:
    """The members in file order, if the archive holds no byte outside them; else ``LayoutError``."""
    if _read_at(handle, 0, 4) != _LOCAL:
        raise LayoutError("does not start with a zip member (bytes are prepended to the archive)")
    cd_offset, _ = _directory_bounds(handle, file_size)
    infos = sorted(archive.infolist(), key=lambda i: i.header_offset)
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise LayoutError("has two members with the same name")
    members: list[Member] = []
    position = 0
    for info in infos:
        if info.header_offset != position:
            raise LayoutError(f"has {info.header_offset - position:+,} unexplained bytes before member "
                              f"{info.filename[:80]!r}")
        header = _read_at(handle, position, 30)
        if header[:4] != _LOCAL:
            raise LayoutError(f"member {info.filename[:80]!r} has no local header where the directory says")
        flags = struct.unpack("<H", header[6:8])[0]
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        local_name = _read_at(handle, position + 30, name_length)
        if local_name.decode("utf-8", "replace") != info.filename and local_name.decode(
            "cp437", "replace"
        ) != info.filename:
            raise LayoutError(f"member {info.filename[:80]!r} has a different name in its local header")
        if flags & _FLAG_ENCRYPTED or info.flag_bits & _FLAG_ENCRYPTED:
            raise LayoutError(f"member {info.filename[:80]!r} is encrypted")
        data_offset = position + 30 + name_length + extra_length
        position = data_offset + info.compress_size
        if flags & _FLAG_DESCRIPTOR:
            position += _descriptor_size(handle, position, info)
        members.append(Member(info, data_offset))
    if position != cd_offset:
        raise LayoutError(f"has {cd_offset - position:+,} unexplained bytes before its central directory")
    return members


def _descriptor_size(handle: BinaryIO, offset: int, info: zipfile.ZipInfo) -> int:
    head = _read_at(handle, offset, 4)
    signed = 4 if head == _DESCRIPTOR else 0
    large = info.compress_size >= 0xFFFFFFFF or info.file_size >= 0xFFFFFFFF or any(
        True for _ in _zip64_extra(info.extra)
    )
    return signed + (20 if large else 12)


def _zip64_extra(extra: bytes):
    position = 0
    while position + 4 <= len(extra):
        tag, size = struct.unpack("<HH", extra[position:position + 4])
        if tag == 0x0001:
            yield size
        position += 4 + size


#: Most members a model archive may have (``scan.max_archive_members``): checked from the end
#: record before ``zipfile`` parses the central directory. torch writes a few per tensor.
MAX_MEMBERS = 65_536


def check_member_count(handle: BinaryIO, policy: Mapping[str, Any]) -> None:
    """Refuse an archive declaring more members than the policy allows, before ``zipfile`` builds
    one object per central-directory entry (100,000 stray members would cost seconds and memory)."""
    limit = int((policy.get("scan") or {}).get("max_archive_members", MAX_MEMBERS))
    entries = declared_entries(handle, handle.seek(0, 2))
    if entries > limit:
        raise LayoutError(f"has {entries:,} members; at most {limit:,} are allowed "
                          "(policies/artifact_policy.yaml, scan.max_archive_members)")


#: What a damaged archive can raise from zipfile, zlib and the layout walk: each is a finding (KS406)
#: about the file, never a failure of the scan.
ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
                  NotImplementedError, RuntimeError, zlib.error, struct.error, KeyError, IndexError,
                  OverflowError)


@contextlib.contextmanager
def open_model_archive(
    source: str | BinaryIO, policy: Mapping[str, Any]
) -> Iterator[tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]]:
    """The model archive at ``source`` (a path, or a file the caller opened without following
    links) and its members, once its member count (from the end record, before ``zipfile`` reads
    the directory) and its exact layout are proven; ``LayoutError`` or one of ``ARCHIVE_ERRORS``
    otherwise. TorchScript and torch.export archives are both zips torch writes this way."""
    with contextlib.ExitStack() as stack:
        handle = stack.enter_context(open(source, "rb")) if isinstance(source, str) else source
        check_member_count(handle, policy)
        archive = stack.enter_context(zipfile.ZipFile(handle))
        members = check_zip_layout(handle, archive, handle.seek(0, 2))
        yield archive, [member.info for member in members]


def unreadable_archive(display: str, exc: BaseException, expected: str, fix: str) -> Finding:
    return Finding("KS406", display, "",
                   f"is not a readable zip archive ({type(exc).__name__}: {str(exc)[:160]})",
                   expected=expected, fix=fix)
