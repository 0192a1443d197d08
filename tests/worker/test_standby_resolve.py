"""A standby resolves its dependency layer's requires ahead (aether.worker.runtimes.aheadnode):
the release then loads its dependencies as a cold start does — the same modules, children,
stack traces and load-time view of its process — with Node.js's resolution caches warm; a
dependency that warns while it is resolved makes the release start cold, once."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from worker_support import (
    FIXTURES,
    WARM,
    deploy_and_ask,
    eventually,
    extracted_release,
)
from worker_support import worker_settings as settings_for

from aether.worker.runtimes.aheadnode import (
    WALK,
    WARNED,
    direct_dependencies,
    entry_requires,
    plan,
)
from aether.worker.runtimes.base import Release
from aether.worker.runtimes.local import LocalRuntime

DEPS_APP = FIXTURES / "deps-app"


def layered(runtime: LocalRuntime, dependencies: dict[str, str] | None = None) -> Release:
    """A release of the deps app whose node_modules links to one layer outside it, as the
    layer cache links it (a layer of the tests' own: outside the cache, which checks its)."""
    data_dir = runtime.settings.data_dir
    release = extracted_release(data_dir, "deps", source=DEPS_APP)
    folder = data_dir / "apps" / "deps" / release.deployment_id
    layer = data_dir / "test-layer" / "node_modules"
    if layer.is_dir():
        shutil.rmtree(folder / "node_modules")
    else:
        layer.parent.mkdir(parents=True)
        shutil.move(folder / "node_modules", layer)
    (folder / "node_modules").symlink_to(layer)
    if dependencies is not None:
        manifest = json.loads((folder / "package.json").read_text())
        (folder / "package.json").write_text(json.dumps({**manifest, "dependencies": dependencies}))
    return release


async def test_a_release_loads_its_dependencies_as_a_cold_start_does_with_them_resolved(
    runtime: LocalRuntime,
) -> None:
    _, cold = await deploy_and_ask(runtime, layered(runtime))
    await eventually(lambda: runtime.standby_of("deps"), what="a standby")
    release = layered(runtime)
    started, warm = await deploy_and_ask(runtime, release)
    assert WARM in started, started
    folder = runtime.apps_dir / "deps" / release.deployment_id
    # Resolved ahead: Node.js knew the dependency's paths before the app's first require.
    assert not cold["resolvedBefore"] and warm["resolvedBefore"]
    # Nothing of it ran before the activation: it loaded in the release's folder and port.
    process = runtime.process_of("deps")
    assert process is not None
    assert warm["loadedWith"] == {"cwd": str(folder), "port": str(process.port), "eol": True}
    for key in ("said", "cache", "children", "grandchildren", "stack", "missing"):
        assert warm[key] == cold[key], key
    assert warm["missing"] == "MODULE_NOT_FOUND"
    assert any("/node_modules/shout/index.js:" in line for line in warm["stack"]), warm["stack"]


async def test_a_dependency_that_warns_while_resolved_ahead_starts_the_release_cold_once(
    runtime: LocalRuntime,
) -> None:
    """Node.js warns about a package's missing `main` once per process: a standby that
    warned cannot give the app that warning, so the release starts cold and the app's next
    standbys do not resolve that layer ahead."""
    with_old_main = {"shout": "1.0.0", "oldmain": "1.0.0"}
    await deploy_and_ask(runtime, layered(runtime, with_old_main))
    await eventually(lambda: runtime.standby_of("deps"), what="a standby")
    started, _ = await deploy_and_ask(runtime, layered(runtime, with_old_main))
    assert f"cold start: {WARNED}: Invalid 'main' field" in started, started
    await eventually(lambda: runtime.standby_of("deps"), what="a standby")
    standby = runtime.standby_of("deps")
    assert standby is not None and standby.ahead is None
    started, _ = await deploy_and_ask(runtime, layered(runtime, with_old_main))
    assert WARM in started, started


async def test_nothing_is_resolved_ahead_when_node_options_preload_a_module(
    runtime: LocalRuntime,
) -> None:
    """A preloaded module may hook resolution (and see the standby's folder, not the
    release's): the standby then only waits."""
    options = {"NODE_OPTIONS": "--max-old-space-size=256 --require=os"}  # (a harmless one)
    await deploy_and_ask(runtime, dataclasses.replace(layered(runtime), env=options))
    await eventually(lambda: runtime.standby_of("deps"), what="a standby")
    started, warm = await deploy_and_ask(
        runtime, dataclasses.replace(layered(runtime), env=options)
    )
    assert WARM in started and not warm["resolvedBefore"]


async def test_nothing_is_resolved_ahead_when_turned_off(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data", AETHER_APP_STANDBY_RESOLVE="0")
    runtime = LocalRuntime(settings, stop_grace_secs=3.0)
    try:
        await deploy_and_ask(runtime, layered(runtime))
        await eventually(lambda: runtime.standby_of("deps"), what="a standby")
        standby = runtime.standby_of("deps")
        assert standby is not None and standby.ahead is None
        started, warm = await deploy_and_ask(runtime, layered(runtime))
        assert WARM in started and not warm["resolvedBefore"]
    finally:
        await runtime.stop_apps()
        await runtime.stop()


def test_the_plan_names_a_linked_layer_and_the_direct_dependencies(tmp_path: Path) -> None:
    folder = tmp_path / "release"
    shutil.copytree(DEPS_APP, folder)
    assert plan(folder) is None  # node_modules inside the release: its paths change
    layer = tmp_path / "layer" / "node_modules"
    layer.parent.mkdir()
    shutil.move(folder / "node_modules", layer)
    (folder / "node_modules").symlink_to(layer)
    found = plan(folder, "server.js")
    assert found is not None and found["layer"] == str(layer)
    # First what the entry file requires (builtins are left to the walk), then the rest.
    assert found["roots"] == [["module", "http", "shout"], ["shout"]]
    # The worker reads nothing outside the release for it: not through the start command's
    # file, nor through a link.
    other = tmp_path / "other-app.js"
    other.write_text("require('secret-of-another-app');\n")
    assert plan(folder, "../other-app.js")["roots"][0] == []  # type: ignore[index]
    (folder / "package.json").unlink()
    (folder / "package.json").symlink_to(DEPS_APP / "package.json")
    (folder / "linked.js").symlink_to(other)
    assert plan(folder, "linked.js")["roots"] == [[], []]  # type: ignore[index]


def test_the_entry_files_packages_come_first(tmp_path: Path) -> None:
    entry = tmp_path / "main.js"
    entry.write_text(
        "const a = require('a');\n// require(\"@s/b/sub\")\nrequire('./own'); require('/abs');"
        "\nrequire( 'a' ); require(variable); require(`c`);\n"
    )
    assert entry_requires(entry) == ["a", "@s/b/sub"]
    assert entry_requires(tmp_path / "missing.js") == []


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('{"dependencies": {"a": "1", "@s/b": "2"}, "optionalDependencies": {"c": "3"}}', ["a", "@s/b", "c"]),
        ('{"dependencies": {"../x": "1", "a b": "2", "ok": "3"}}', ["ok"]),
        ('{"dependencies": ["a"]}', []),
        ("[1, 2]", []),
        ("not json", []),
    ],
)  # fmt: skip
def test_direct_dependencies_keep_only_package_names(
    tmp_path: Path, text: str, names: list[str]
) -> None:
    path = tmp_path / "package.json"
    path.write_text(text)
    assert direct_dependencies(path) == names
    assert direct_dependencies(tmp_path / "missing.json") == []


def test_the_walk_follows_the_first_group_first_and_stops_at_its_budget(tmp_path: Path) -> None:
    """Two packages each requiring a file of their own, a budget of two files: the first
    group's package and its file are resolved, the second's not; nothing is loaded."""
    layer = tmp_path / "layer" / "node_modules"
    for name in ("first", "second"):
        (layer / name).mkdir(parents=True)
        (layer / name / "index.js").write_text(f"require('./{name}-part'); require('os');\n")
        (layer / name / f"{name}-part.js").write_text("module.exports = 1;\n")
    walk = {"layer": str(layer), "roots": [["first"], ["second"]], "maxFiles": 2,
            "maxFileBytes": 1 << 20, "budgetMs": 10_000, "builtins": ["os"]}  # fmt: skip
    script = WALK + (
        "const fs = require('fs');\n"
        f"const warned = resolveAhead({json.dumps(walk)});\n"
        "const keys = Object.keys(require('module')._pathCache).map((k) => k.split('\\0')[0]);\n"
        "console.log(JSON.stringify({ warned, keys, cache: Object.keys(require.cache).length }));\n"
    )
    done = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, timeout=30, check=True
    )
    seen = json.loads(done.stdout)
    assert seen["warned"] == "" and seen["cache"] == 0  # (node -e: no module of its own)
    assert "first" in seen["keys"] and "./first-part" in seen["keys"]
    assert "second" not in seen["keys"] and "./second-part" not in seen["keys"]
