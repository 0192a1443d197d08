"""A small Node.js project tree built in code: the fixture every pack test starts from.

No npm and no network: the lockfile, npm's hidden lockfile and ``node_modules`` are written by
hand, with a scoped package, a nested dependency, a dev-only package (in the lockfile, not on
disk), an executable, a ``.bin`` symlink, an empty folder, a non-ASCII name and a path longer
than the 100 bytes a ustar name field holds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from aether.pack.packer import INLINE_MAX

LONG_DIR = "lib/" + "/".join(["a-rather-long-folder-name"] * 4)
LONG_FILE = f"{LONG_DIR}/and-a-long-file-name.js"
EXECUTABLES = ("bin/start.sh", "node_modules/left-pad/cli.js")


def integrity(name: str) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(name.encode()).digest()).decode()


def lock_entry(name: str, version: str, license_: str, **extra: object) -> dict:
    return {
        "version": version,
        "resolved": f"https://registry.npmjs.org/{name}/-/{name.split('/')[-1]}-{version}.tgz",
        "integrity": integrity(name),
        "license": license_,
        **extra,
    }


PACKAGE_JSON = {
    "name": "@acme/web",
    "version": "1.2.3",
    "scripts": {"start": "node index.js"},
    "dependencies": {"@types/node": "20.1.0", "left-pad": "1.3.0"},
    "devDependencies": {"jest": "29.0.0"},
}

LOCK_PACKAGES = {
    "": {
        "name": "@acme/web",
        "version": "1.2.3",
        "dependencies": PACKAGE_JSON["dependencies"],
        "devDependencies": PACKAGE_JSON["devDependencies"],
    },
    "node_modules/@types/node": lock_entry("@types/node", "20.1.0", "MIT"),
    "node_modules/left-pad": lock_entry(
        "left-pad", "1.3.0", "WTFPL", dependencies={"repeat-string": "^1.6.0"}
    ),
    "node_modules/left-pad/node_modules/repeat-string": lock_entry("repeat-string", "1.6.1", "MIT"),
    "node_modules/jest": lock_entry("jest", "29.0.0", "MIT", dev=True),
}


def package_lock(version: int = 3) -> dict:
    return {
        "name": "@acme/web",
        "version": "1.2.3",
        "lockfileVersion": version,
        "requires": True,
        "packages": LOCK_PACKAGES,
    }


def hidden_lock() -> dict:
    installed = {k: v for k, v in LOCK_PACKAGES.items() if k and not v.get("dev")}
    return {"name": "@acme/web", "version": "1.2.3", "lockfileVersion": 3, "packages": installed}


FILES = {
    "package.json": json.dumps(PACKAGE_JSON, indent=2) + "\n",
    "package-lock.json": json.dumps(package_lock(), indent=2) + "\n",
    "index.js": "require('left-pad');\nconsole.log('hello');\n",
    "bin/start.sh": "#!/bin/sh\nexec node index.js\n",
    "données/café.txt": "non-ascii names survive\n",
    LONG_FILE: "module.exports = 'deep';\n",
    "node_modules/.package-lock.json": json.dumps(hidden_lock(), indent=2) + "\n",
    "node_modules/@types/node/package.json": '{"name": "@types/node", "version": "20.1.0"}\n',
    "node_modules/@types/node/index.d.ts": "export {};\n",
    "node_modules/left-pad/package.json": '{"name": "left-pad", "version": "1.3.0"}\n',
    "node_modules/left-pad/index.js": "module.exports = (s) => s;\n",
    "node_modules/left-pad/cli.js": "#!/usr/bin/env node\n",
    "node_modules/left-pad/node_modules/repeat-string/package.json": '{"version": "1.6.1"}\n',
    "node_modules/left-pad/node_modules/repeat-string/index.js": "module.exports = 1;\n",
}
SYMLINKS = {"node_modules/.bin/left-pad": "../left-pad/cli.js"}
EMPTY_DIRS = ("docs",)


def build_sample(root: Path, *, exec_mode: int = 0o755, file_mode: int = 0o644) -> Path:
    """Write the sample project under ``root`` (created); returns ``root``."""
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(exec_mode if rel in EXECUTABLES else file_mode)
    for rel, target in SYMLINKS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / rel)
    for rel in EMPTY_DIRS:
        (root / rel).mkdir(parents=True, exist_ok=True)
    return root


def all_paths(root: Path) -> list[Path]:
    return [Path(folder) / name for folder, dirs, files in os.walk(root) for name in dirs + files]


def odd_tree(root: Path) -> Path:
    """The sample project plus every kind of member the header writer has a branch for."""
    build_sample(root)
    deep = root / ("d" * 60) / ("e" * 60)  # a directory name beyond the ustar field
    deep.mkdir(parents=True)
    (deep / ("f" * 90 + ".js")).write_text("long\n")
    os.symlink("../" + "t" * 120, root / "lib" / "long-target")  # a pax linkpath
    os.symlink(("../" * 2) + ("d" * 60), deep / ("l" * 150))  # pax path and a short link
    (root / "élan-ünïcode.js").write_text("ü\n")
    for size in (0, 1, 511, 512, 513, 10_000, INLINE_MAX, INLINE_MAX + 1):
        (root / f"size-{size}.bin").write_bytes(os.urandom(size))
    tool = root / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    tool.chmod(0o711)
    return root


def mixed_tree(root: Path) -> Path:
    """Plain folders (the native path) next to folders only the Python listing takes."""
    build_sample(root)
    (root / ".git" / "objects").mkdir(parents=True)  # never packed, at any depth
    (root / "lib" / ".git").mkdir()
    (root / ".aether").mkdir()  # the output folder
    (root / "plain" / "deeper").mkdir(parents=True)
    for index in range(50):
        (root / "plain" / f"f{index}.js").write_text(str(index))
    (root / "plain" / "deeper" / "élan.js").write_text("ü")
    (root / "plain" / "Zebra.js").write_text("upper case sorts first")
    (root / "odd").mkdir()
    (root / "odd" / "a.js").write_text("a")
    os.symlink("a.js", root / "odd" / "link.js")
    os.mkfifo(root / "odd" / "pipe")
    (root / "bytes").mkdir()
    (root / "bytes" / "ok.js").write_text("ok")
    (Path(os.fsdecode(os.fsencode(root / "bytes") + b"/\xff.js"))).write_text("not UTF-8")
    return root
