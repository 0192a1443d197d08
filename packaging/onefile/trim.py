"""What is deleted from the trees because it is never imported at run time.

Every first start unpacks the file and every ``import`` searches the folders, so what no code
path loads only costs: botocore's service data beyond S3 and the credential services, type
stubs, bundled test suites, C sources, console scripts and pip's bookkeeping files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# botocore ships data for ~430 services; a client loads only its own. S3 is what blobs/s3 uses;
# sts, sso, sso-oidc and signin are created by botocore's credential providers (assume-role,
# SSO and console-login profiles).
BOTOCORE_SERVICES = frozenset({"s3", "sts", "sso", "sso-oidc", "signin"})
TRIM_DIRS = frozenset({"__pycache__", "tests"})
TRIM_SUFFIXES = (".pyi", ".pyx", ".pxd", ".c", ".h", ".S")
# The wheel's bookkeeping; METADATA, entry points and licences stay.
TRIM_NAMES = frozenset(
    {"py.typed", "RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "WHEEL", "top_level.txt"}
)
TRIM_DIST_INFO_PREFIXES = ("README", "CHANGELOG")
# zstandard's CFFI backend (12 MB per Python version) is loaded only when its C backend
# cannot be, and every file carries the C backend for each version it supports.
TRIM_GLOBS = ("zstandard/_cffi.*",)
# Part of the cache key of trimmed trees: change it with the rules above.
RULES = "5"


def tree(site: Path) -> None:
    """Delete what is never imported from the site-packages tree ``site``."""
    shutil.rmtree(site / "bin", ignore_errors=True)
    botocore_data = site / "botocore" / "data"
    if botocore_data.is_dir():
        for service in botocore_data.iterdir():
            if service.is_dir() and service.name not in BOTOCORE_SERVICES:
                shutil.rmtree(service)
        for examples in botocore_data.glob("*/*/examples-*.json"):
            examples.unlink()
    for pattern in TRIM_GLOBS:
        for path in site.glob(pattern):
            path.unlink()
    for path in sorted(site.rglob("*"), reverse=True):
        if path.is_dir() and path.name in TRIM_DIRS:
            shutil.rmtree(path)
        elif path.is_file() and is_never_imported(path):
            path.unlink()


def is_never_imported(path: Path) -> bool:
    if path.name in TRIM_NAMES or path.suffix in TRIM_SUFFIXES:
        return True
    return path.parent.name.endswith(".dist-info") and path.name.startswith(TRIM_DIST_INFO_PREFIXES)
