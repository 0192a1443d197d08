"""Which flow an upload takes: one direct PUT only where the server says it takes one and the
object is small; older servers (no ``direct_upload_max_bytes``) always get the presign."""

from __future__ import annotations

from pathlib import Path

from aether.client.transfer import UploadRequest
from aether.client.upload import is_direct


def request(size: int, compression: str = "zstd") -> UploadRequest:
    return UploadRequest(Path("layer.tar.zst"), "shop", "0" * 64, size, compression)


def test_a_small_archive_goes_direct_where_the_server_takes_it() -> None:
    config = {"direct_upload_max_bytes": 1000, "multipart_threshold_bytes": 10_000}
    assert is_direct(request(1000), config)
    assert is_direct(request(10, "gzip"), config)
    assert not is_direct(request(1001), config)
    assert not is_direct(request(10, "none"), config)  # an SBOM is stored as it is
    assert not is_direct(request(10), {"multipart_threshold_bytes": 10_000})  # older server
    assert not is_direct(request(600), {**config, "multipart_threshold_bytes": 500})
