"""pytest plugin: moto's S3 server on a loopback port for the whole session.

moto's in-process mocks do not intercept aiobotocore, so the S3 blob store is tested against
moto's real S3 wire protocol (``ThreadedMotoServer``) on 127.0.0.1 with an explicit free port.
Fake AWS credentials are set in the environment for the session (botocore reads them there).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aether.settings import BlobSettings

_FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a running moto S3 server (with fake credentials set)."""
    from moto.server import ThreadedMotoServer

    saved = {name: os.environ.get(name) for name in _FAKE_AWS}
    os.environ.update(_FAKE_AWS)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def s3_blob_settings(s3_endpoint: str, tmp_path: Path) -> BlobSettings:
    """Blob settings for S3 mode on the moto server, with a bucket of this test's own."""
    return BlobSettings.from_env(
        {
            "AETHER_STORAGE_MODE": "s3",
            "AETHER_DATA_DIR": str(tmp_path / "data"),
            "AETHER_ARTIFACT_BUCKET": f"t-{uuid.uuid4().hex[:16]}",
            "AETHER_S3_ENDPOINT_URL": s3_endpoint,
        }
    )
