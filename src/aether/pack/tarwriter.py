"""A lean, deterministic tar header writer (POSIX ustar, pax records only for long values).

Python's ``tarfile`` spends most of its time on per-member bookkeeping; a packed
``node_modules`` has tens of thousands of small files, so the headers are built here from
pre-computed constant parts. Every header is normalised: uid/gid 0, empty user and group
names, one mtime for the whole archive, device numbers zero. Paths or link targets longer than
the 100-byte ustar fields, and sizes beyond its 8 GiB limit, get a pax extended header that
holds only those records, under a fixed name, so the output depends on nothing but the inputs.
These are pure functions: no I/O.
"""

from __future__ import annotations

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
