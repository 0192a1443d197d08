"""The staged build with real packages from the npm registry: a TypeScript app built with
tsc, an addon compiled from source, a tree installed for macOS, pnpm and yarn lockfiles, a
workspace. The developer's folder is hashed before and after: not one byte may change."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard

from aether.errors import UsageError
from aether.pack import PackOptions, build_artifact
from aether.pack.natives import inspect_binary, mismatch
from aether.pack.target import Target
from plugins.node_projects import run, tree_digest, typescript_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TS_APP, TS_FILES = typescript_app("ts-api", "hello from ts")
SERVER_JS = 'require("http").createServer((q, s) => s.end("ok")).listen(process.env.PORT);\n'


@pytest.fixture(scope="module")
def ts_app(node_project) -> Path:  # type: ignore[no-untyped-def]
    return node_project("ts-api", TS_APP, TS_FILES)


def pack(project: Path, env: dict[str, str], out: Path, **options: Any):  # type: ignore[no-untyped-def]
    return build_artifact(project, PackOptions(out=out, sbom=False, **options), environ=env)


def members(artifact: Path) -> set[str]:
    with artifact.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as stream:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            return {member.name for member in tar}


def test_typescript_app_builds_outside_the_tree(ts_app: Path, node_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run(["npm", "test"], ts_app, node_env)
    before = tree_digest(ts_app)
    first = pack(ts_app, node_env, tmp_path / "out")
    assert tree_digest(ts_app) == before  # node_modules included: devDependencies still there
    run(["npm", "test"], ts_app, node_env)
    found = members(first.artifact)
    assert {"dist/server.js", "src/server.ts", "node_modules/express/package.json"} <= found
    assert not any(name.startswith("node_modules/typescript") for name in found)
    assert first.build["built"] and first.build["package_manager"].startswith("npm ")
    assert first.node_major is not None

    again = pack(ts_app, node_env, tmp_path / "out")
    assert again.digest == first.digest and again.build["deps_reused"] is True
    (ts_app / "src/server.ts").write_text(TS_FILES["src/server.ts"].replace("hello", "hi"))
    try:
        changed = pack(ts_app, node_env, tmp_path / "out")
    finally:
        (ts_app / "src/server.ts").write_text(TS_FILES["src/server.ts"])
    assert changed.digest != first.digest
    assert changed.build["deps_key"] == first.build["deps_key"] and changed.build["deps_reused"]


def test_a_missing_build_output_stops_a_deploy_before_packing(
    ts_app: Path, node_env, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="dist/server.js is not in the app"):
        pack(ts_app, node_env, tmp_path / "out", build=False, require_start=True)


def test_native_addon_compiled_from_source(node_project, node_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # unix-dgram has no prebuilt binaries: npm compiles it with node-gyp (a few seconds).
    project = node_project(
        "dgram-app",
        {"name": "dgram-app", "version": "1.0.0", "dependencies": {"unix-dgram": "2.0.6"},
         "scripts": {"start": "node server.js"}},
        {"server.js": 'require("unix-dgram").createSocket("unix_dgram").close();\n'
         'require("http").createServer((q, s) => s.end("ok"))'
         ".listen(process.env.PORT);\n"},
        install=["npm", "install", "--package-lock-only"],
    )  # fmt: skip
    packed = pack(project, node_env, tmp_path / "out")
    addon = "node_modules/unix-dgram/build/Release/unix_dgram.node"
    assert addon in members(packed.artifact)
    deps = Path(node_env["XDG_CACHE_HOME"]) / "aether/deps" / packed.build["deps_key"]
    binary = inspect_binary(str(deps / addon))
    assert binary is not None and binary.node_abi is not None
    assert (
        mismatch(binary, Target("linux", binary.cpus[0], "glibc", None, packed.node_major)) is None
    )
    assert "Node.js ABI" in (
        mismatch(binary, Target("linux", binary.cpus[0], "glibc", None, 22)) or ""
    )
    from aether.client.boot import boot_check

    assert (
        boot_check(
            packed.artifact, start_command=None, health_path="/", environ=node_env, scratch=tmp_path
        ).status
        == 200
    )


def test_a_tree_installed_for_macos_is_repacked_or_refused(
    node_project, node_env, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    project = node_project(
        "mac-app",
        {"name": "mac-app", "version": "1.0.0", "scripts": {"start": "node server.js"},
         "dependencies": {"sharp": "0.33.5"}},
        {"server.js": 'require("sharp");\n' + SERVER_JS},
        install=["npm", "install", "--os=darwin", "--cpu=arm64"],
    )  # fmt: skip
    linux = Target("linux", "x64", "glibc", "2.36", 20)
    out = tmp_path / "refused"
    with pytest.raises(UsageError) as refused:
        pack(project, node_env, out, install=False, target=linux)
    message = refused.value.message
    assert "node_modules/@img/sharp-darwin-arm64/lib/sharp-darwin-arm64.node" in message
    assert "built for darwin-arm64 (Mach-O)" in message and "linux-x64-glibc2.36" in message
    assert "--no-native-check" in message and "Nothing was uploaded" in message
    assert not (out / "app.tar.zst").exists()  # no broken artifact left to upload

    repacked = pack(project, node_env, tmp_path / "out", target=linux)
    found = members(repacked.artifact)
    assert any(name.startswith("node_modules/@img/sharp-linux-x64/") for name in found)
    assert not any("darwin" in name for name in found)
    assert (project / "node_modules/@img/sharp-darwin-arm64").is_dir()  # the tree as it was


@pytest.mark.parametrize(
    ("manager", "install"),
    [
        ("pnpm", ["npx", "--yes", "pnpm@9.15.0", "install"]),
        ("yarn-classic", ["npx", "--yes", "yarn@1.22.22", "install"]),
        ("yarn-berry", ["npx", "--yes", "-p", "@yarnpkg/cli-dist@4.5.0", "yarn", "install"]),
    ],
)
def test_pnpm_and_yarn_lockfiles(
    node_project, node_env, tmp_path: Path, manager: str, install: list[str]
) -> None:  # type: ignore[no-untyped-def]
    package = {
        "name": f"{manager}-app", "version": "1.0.0", "scripts": {"start": "node server.js"},
        "dependencies": {"ms": "2.1.3"}, "devDependencies": {"left-pad": "1.3.0"},
    }  # fmt: skip
    if manager == "yarn-berry":
        package["packageManager"] = "yarn@4.5.0"
    # The developer's own first install writes the lockfile; yarn berry forbids that wherever
    # it detects CI (the CI variable) unless told otherwise, as a developer's laptop never is.
    env = {
        **node_env,
        "YARN_NODE_LINKER": "node-modules",
        "YARN_ENABLE_TELEMETRY": "0",
        "YARN_ENABLE_IMMUTABLE_INSTALLS": "false",
    }
    project = node_project(f"{manager}-app", package, {"server.js": SERVER_JS}, install=())
    run(install, project, env)
    before = tree_digest(project)
    packed = pack(project, node_env, tmp_path / "out")
    assert tree_digest(project) == before
    found = members(packed.artifact)
    assert any(name.endswith("ms/package.json") for name in found)
    assert not any("left-pad" in name for name in found)
    assert "node_modules/.modules.yaml" not in found  # pnpm's state: a store path, a time
    assert packed.build["package_manager"].startswith(manager.split("-")[0] + " ")


def test_one_package_of_an_npm_workspace(node_project, node_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = node_project(
        "mono",
        {"name": "mono", "private": True, "workspaces": ["packages/*"]},
        {
            "packages/api/package.json": '{"name": "@m/api", "version": "1.0.0", "scripts": {"start": "node index.js"}, "dependencies": {"@m/shared": "1.0.0", "ms": "2.1.3"}}',
            "packages/api/index.js": 'const s = require("@m/shared");\nrequire("http").createServer((q, r) => r.end(s.hello())).listen(process.env.PORT);\n',
            "packages/shared/package.json": '{"name": "@m/shared", "version": "1.0.0", "main": "dist/index.js", "scripts": {"build": "node build.js"}, "dependencies": {"ms": "2.0.0"}}',
            "packages/shared/build.js": 'require("fs").mkdirSync("dist", {recursive: true}); require("fs").writeFileSync("dist/index.js", "exports.hello = () => require(\\"ms\\")(60000);");\n',
            "packages/web/package.json": '{"name": "@m/web", "version": "1.0.0", "dependencies": {"is-number": "7.0.0"}}',
        },
    )  # fmt: skip
    before = tree_digest(root)
    packed = pack(root / "packages/api", node_env, tmp_path / "out")
    assert tree_digest(root) == before
    found = members(packed.artifact)
    assert {
        "packages/api/index.js",
        "packages/shared/dist/index.js",
        "node_modules/ms/package.json",
    } <= found
    assert "packages/shared/node_modules/ms/package.json" in found  # its own version, nested
    assert not any(name.startswith(("packages/web", "node_modules/is-number")) for name in found)
    assert packed.start_command == "cd packages/api && node index.js"
    from aether.client.boot import boot_check

    report = boot_check(
        packed.artifact,
        start_command=packed.start_command,
        health_path="/",
        environ=node_env,
        scratch=tmp_path,
    )
    assert report.status == 200


def test_yarn_berry_without_a_lockfile_packs_on_a_ci_machine(
    node_project, node_env, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    package = {
        "name": "berry-ci", "version": "1.0.0",
        "scripts": {"build": "node -e \"require('ms')\"", "start": "node server.js"},
        "dependencies": {"ms": "2.1.3"}, "packageManager": "yarn@4.5.0",
    }  # fmt: skip
    project = node_project("berry-ci", package, {"server.js": SERVER_JS}, install=())
    before = tree_digest(project)
    packed = pack(project, {**node_env, "CI": "true"}, tmp_path / "out")
    assert tree_digest(project) == before
    assert "node_modules/ms/package.json" in members(packed.artifact)
    assert packed.build["package_manager"].startswith("yarn 4.")
