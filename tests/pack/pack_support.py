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
