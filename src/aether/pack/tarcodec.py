"""The tar codec: deterministic headers written (POSIX ustar, pax records only for long
values), and the same headers read back.

Writing: Python's ``tarfile`` spends most of its time on per-member bookkeeping; a packed
``node_modules`` has tens of thousands of small files, so the headers are built here from
pre-computed constant parts. Every header is normalised: uid/gid 0, empty user and group
names, one mtime for the whole archive, device numbers zero. Paths or link targets longer than
the 100-byte ustar fields, and sizes beyond its 8 GiB limit, get a pax extended header that
holds only those records, under a fixed name, so the output depends on nothing but the inputs.

Reading (:func:`read_headers`): exactly that format back, with each member's raw header bytes,
for the worker's layer cache, which hashes and copies records as they stand. What it does not
read (GNU long names, global pax headers, base-256 numbers, another magic, a bad checksum) is
an :class:`UnreadableHeader`, never a guess. Extraction and ``aether verify`` read with
``tarfile`` instead: they take archives from any tool, in every tar dialect. The C batch reader
(``_batchread.c``) writes the same bytes as :func:`entry_header` and :func:`file_header`.
Apart from the stream that :func:`read_headers` is given, these are pure functions: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

BLOCK = 512
RECORD = 10240  # tar's traditional blocking factor 20; readers expect whole records
MAX_OCTAL_SIZE = 8**11 - 1  # largest value of an 11-digit octal field
DIR_MODE = 0o755
EXEC_MODE = 0o755
FILE_MODE = 0o644

REGTYPE = b"0"
SYMTYPE = b"2"
DIRTYPE = b"5"
PAXTYPE = b"x"
PAX_NAME = b"././@PaxHeader"  # what CPython's tarfile writes; any reader skips it

_NUL = b"\0"
_ZERO8 = b"0000000\0"
_MAGIC = b"ustar\x0000"
_CHKSUM_BLANK = b" " * 8
# uid, gid, and after the magic: uname, gname, devmajor, devminor, prefix, padding
_OWNER = _ZERO8 + _ZERO8
_TAIL = _NUL * 64 + _ZERO8 + _ZERO8 + _NUL * 167
_CONST_SUM = sum(_OWNER) + sum(_CHKSUM_BLANK) + sum(_MAGIC) + sum(_TAIL)


def normalised_mode(st_mode: int, *, is_dir: bool = False) -> int:
    """0755 for directories and anything executable, 0644 for everything else."""
    if is_dir or st_mode & 0o111:
        return EXEC_MODE
    return FILE_MODE


# PADDINGS[size % BLOCK]: the zero bytes that round ``size`` bytes up to a whole block.
PADDINGS = tuple(bytes(-remainder % BLOCK) for remainder in range(BLOCK))


def padding(size: int) -> bytes:
    """Zero bytes that round a member's data up to a whole block."""
    return PADDINGS[size % BLOCK]


def end_of_archive(offset: int) -> bytes:
    """Two zero blocks, then zeros up to a whole record (``offset`` = bytes written so far)."""
    total = offset + 2 * BLOCK
    return _NUL * (2 * BLOCK + (-total % RECORD))


def mtime_field(mtime: int) -> bytes:
    if not 0 <= mtime <= MAX_OCTAL_SIZE:
        raise ValueError(f"mtime {mtime} does not fit a ustar header")
    return b"%011o\0" % mtime


def _header(
    name: bytes, mode: int, size: int, typeflag: bytes, linkname: bytes, mtime: bytes
) -> bytes:
    mode_field = b"%07o\0" % mode
    size_field = b"%011o\0" % size
    chksum = (
        _CONST_SUM
        + sum(name)
        + sum(mode_field)
        + sum(size_field)
        + sum(mtime)
        + typeflag[0]
        + sum(linkname)
    )
    return b"".join(
        (
            name.ljust(100, _NUL),
            mode_field,
            _OWNER,
            size_field,
            mtime,
            b"%06o\0 " % chksum,
            typeflag,
            linkname.ljust(100, _NUL),
            _MAGIC,
            _TAIL,
        )
    )


def _pax_record(key: bytes, value: bytes) -> bytes:
    # The length prefix counts itself, so grow it until it is stable.
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(b"%d" % length) + len(body) != length:
        length = len(b"%d" % length) + len(body)
    return b"%d" % length + body


def _pax_block(records: list[bytes], mtime: bytes) -> bytes:
    data = b"".join(records)
    return _header(PAX_NAME, FILE_MODE, len(data), PAXTYPE, b"", mtime) + data + padding(len(data))


def entry_header(
    path: bytes, typeflag: bytes, mode: int, size: int, mtime: bytes, linkname: bytes = b""
) -> bytes:
    """The header block(s) for one member; a pax block first when a field overflows.

    ``path`` is the relative POSIX path (``/``-terminated for directories) in bytes.
    """
    records = []
    if len(path) > 100:
        records.append(_pax_record(b"path", path))
        path = path[:100]
    if len(linkname) > 100:
        records.append(_pax_record(b"linkpath", linkname))
        linkname = linkname[:100]
    if size > MAX_OCTAL_SIZE:
        records.append(_pax_record(b"size", b"%d" % size))
        size = 0
    header = _header(path, mode, size, typeflag, linkname, mtime)
    if records:
        return _pax_block(records, mtime) + header
    return header


# The fast path for the common case (a regular file whose fields all fit): everything but the
# name, size and checksum is a pre-built constant, and so is its share of the checksum.
_FILE_MIDDLE = {mode: b"%07o\0" % mode + _OWNER for mode in (FILE_MODE, EXEC_MODE)}
_FILE_TAIL = REGTYPE + _NUL * 100 + _MAGIC + _TAIL
_MTIME_SUMS: dict[bytes, int] = {}
_FILE_SUMS = {
    mode: sum(middle) + sum(_CHKSUM_BLANK) + sum(_FILE_TAIL)
    for mode, middle in _FILE_MIDDLE.items()
}


def file_header(path: bytes, mode: int, size: int, mtime: bytes) -> bytes:
    if len(path) > 100 or size > MAX_OCTAL_SIZE or mode not in _FILE_MIDDLE:
        return entry_header(path, REGTYPE, mode, size, mtime)
    size_field = b"%011o\0" % size
    mtime_sum = _MTIME_SUMS.get(mtime)
    if mtime_sum is None:
        mtime_sum = _MTIME_SUMS[mtime] = sum(mtime)
    chksum = _FILE_SUMS[mode] + sum(path) + sum(size_field) + mtime_sum
    return b"".join(
        (
            path.ljust(100, _NUL),
            _FILE_MIDDLE[mode],
            size_field,
            mtime,
            b"%06o\0 " % chksum,
            _FILE_TAIL,
        )
    )


def directory_header(path: bytes, mtime: bytes) -> bytes:
    """``path`` already ends with ``/``."""
    return entry_header(path, DIRTYPE, DIR_MODE, 0, mtime)


def symlink_header(path: bytes, target: bytes, mtime: bytes) -> bytes:
    return entry_header(path, SYMTYPE, FILE_MODE, 0, mtime, target)


# --- reading ------------------------------------------------------------------------------------

ZERO_BLOCK = _NUL * BLOCK
_POSIX_MAGIC = _MAGIC  # "ustar\0" + version "00": what entry_header writes
_ESCAPE = "surrogateescape"  # names are bytes; any of them survives a round trip


class UnreadableHeader(ValueError):
    """A tar construct this codec does not read, or a truncated or corrupt header."""


class Source(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Member:
    """One member's header as the archive states it (pax records applied)."""

    name: str  # the pax path, else the ustar prefix/name, as stored (``dir/`` keeps its slash)
    typeflag: bytes
    mode: int
    size: int
    linkname: str
    mtime: int
    raw: bytes  # the member's header block(s) as read: its pax block, if any, and its header


def data_blocks(size: int) -> int:
    """How many bytes a member's ``size`` bytes of data take in the archive (whole blocks)."""
    return -(-size // BLOCK) * BLOCK


def read_exactly(source: Source, size: int) -> bytes:
    """``size`` bytes from ``source``; UnreadableHeader when it ends sooner."""
    chunks, left = [], size
    while left > 0:
        chunk = source.read(min(left, 4 * 1024 * 1024))
        if not chunk:
            raise UnreadableHeader("the archive ends in the middle of a member")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_headers(source: Source) -> Iterator[Member]:
    """Each member's header, in order, up to the end-of-archive block. After each one the
    caller reads (or skips) ``data_blocks(member.size)`` bytes from ``source`` itself."""
    pax_block, records = b"", {}
    while True:
        block = read_exactly(source, BLOCK)
        if block == ZERO_BLOCK:
            return
        member = parse_header(block)
        if member.typeflag == PAXTYPE:
            data = read_exactly(source, data_blocks(member.size))
            pax_block, records = block + data, parse_pax_records(data[: member.size])
            continue
        if member.typeflag in (b"g", b"L", b"K"):
            raise UnreadableHeader(f"tar record type {member.typeflag!r} is not read here")
        yield _with_records(member, records, pax_block)
        pax_block, records = b"", {}


def parse_header(block: bytes) -> Member:
    """One ustar header block (no pax records applied); UnreadableHeader when it is not one."""
    if block[257:265] != _POSIX_MAGIC:
        raise UnreadableHeader("not a POSIX ustar header")
    stored = _octal(block[148:156])
    unsigned = sum(block[:148]) + sum(_CHKSUM_BLANK) + sum(block[156:])
    signed = unsigned - 256 * sum(1 for byte in block if byte >= 0x80)  # old writers' sum
    if stored not in (unsigned, signed):
        raise UnreadableHeader("the header's checksum does not match")
    name, prefix = _text(block[0:100]), _text(block[345:500])
    return Member(
        name=f"{prefix}/{name}" if prefix else name,
        typeflag=block[156:157],
        mode=_octal(block[100:108]),
        size=_octal(block[124:136]),
        linkname=_text(block[157:257]),
        mtime=_octal(block[136:148]),
        raw=block,
    )


def parse_pax_records(data: bytes) -> dict[str, str]:
    """``length key=value\n`` records → a dict; UnreadableHeader when one is malformed."""
    records, position = {}, 0
    while position < len(data) and data[position] != 0:
        length_text, space, _ = data[position : position + 20].partition(b" ")
        if not space or not length_text.isdigit():
            raise UnreadableHeader("a malformed pax record")
        record = data[position : position + int(length_text)]
        key, equals, value = record[len(length_text) + 1 : -1].partition(b"=")
        if not equals or record[-1:] != b"\n" or int(length_text) <= len(length_text) + 1:
            raise UnreadableHeader("a malformed pax record")
        if key.startswith(b"GNU.sparse"):
            raise UnreadableHeader("sparse files are not read here")
        records[key.decode("utf-8", _ESCAPE)] = value.decode("utf-8", _ESCAPE)
        position += len(record)
    return records


def _with_records(member: Member, records: dict[str, str], pax_block: bytes) -> Member:
    size = records.get("size")
    try:
        return Member(
            name=records.get("path", member.name),
            typeflag=member.typeflag,
            mode=member.mode,
            size=int(size) if size is not None else member.size,
            linkname=records.get("linkpath", member.linkname),
            mtime=member.mtime,
            raw=pax_block + member.raw,
        )
    except ValueError as exc:
        raise UnreadableHeader(f"a pax size that is not a number: {size!r}") from exc


def _octal(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:
        raise UnreadableHeader("a base-256 number")
    text = field.split(_NUL, 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError as exc:
        raise UnreadableHeader(f"not an octal number: {text!r}") from exc


def _text(field: bytes) -> str:
    return field.split(_NUL, 1)[0].decode("utf-8", _ESCAPE)
