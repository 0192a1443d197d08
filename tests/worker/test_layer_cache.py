"""The host's layer cache: apps with the same dependencies share one extracted deps layer,
workers racing to make it make it once, a cleanup never removes a layer a release uses, and a
cached copy that was tampered with is found and made again from its verified archive."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from layered_support import make_project, pack, store
from worker_support import Recorder

from aether.blobs.local import LocalBlobStore
from aether.pack import treeseal, treestamp
from aether.worker.outcomes import Fatal
from aether.worker.runtimes.base import Release
from aether.worker.runtimes.hostlock import try_lock
from aether.worker.runtimes.layer_cache import EXTRACTED, MISSING, REUSED, LayerCache
from aether.worker.runtimes.releasedir import prepare


def deployment_id() -> str:
    return str(uuid.uuid4())


def deps_fetches(record: Recorder) -> int:
    return sum(1 for phase, text in record.events if phase == "fetching" and "deps layer" in text)


@dataclass
class Host:
    """A worker host's apps folder and layer cache, and releases of two apps (``one``,
    ``two``) whose dependencies are the same, stored in ``blobs``."""

    blobs: LocalBlobStore
    apps: Path
    cache: LayerCache
    first: Release
    second: Release

    async def prepare(self, release: Release, record: Recorder | None = None) -> Path:
        return await prepare(
            release, self.apps, self.blobs, record or Recorder(), require_signature=False,
            cache=self.cache,
        )  # fmt: skip


@pytest.fixture
async def host(blobs: LocalBlobStore, tmp_path: Path) -> Host:
    one = pack(make_project(tmp_path / "p1", "console.log('one')\n"), tmp_path / "o1")
    two = pack(make_project(tmp_path / "p2", "console.log('two')\n"), tmp_path / "o2")
    assert one.layers[0]["digest"] == two.layers[0]["digest"]
    data = tmp_path / "data"
    return Host(
        blobs,
        data / "apps",
        LayerCache(data / "layers"),
        await store(blobs, one, deployment_id(), app="one"),
        await store(blobs, two, deployment_id(), app="two"),
    )


async def test_two_apps_sharing_a_deps_layer_extract_it_once(host: Host) -> None:
    records = [Recorder(), Recorder()]
    folders = await asyncio.gather(
        *(
            host.prepare(release, record)
            for release, record in zip((host.first, host.second), records, strict=True)
        )
    )
    assert sum(deps_fetches(record) for record in records) == 1
    messages = sorted(record.events[-1][1] for record in records)
    assert "node_modules extracted" in messages[0] and "node_modules reused" in messages[1]
    targets = {os.readlink(folder / "node_modules") for folder in folders}
    assert targets == {str(host.cache.layer_path(host.first.layers[0].digest))}
    for folder in folders:
        assert (folder / "node_modules" / "left-pad" / "index.js").read_text().startswith("module")


async def test_two_caches_on_one_root_make_a_layer_once(tmp_path: Path) -> None:
    """Two workers (two caches: each open of a lock file excludes the others, in one process
    as across processes) asked for the same missing layer at once: one makes it."""
    root = tmp_path / "layers"
    made: list[int] = []
    gate = asyncio.Event()

    def maker(n: int):  # type: ignore[no-untyped-def]
        async def make(work: Path) -> None:
            made.append(n)
            await gate.wait()
            (work / "node_modules").mkdir()
            (work / "node_modules" / "a.js").write_text(str(n))

        return make

    key = "ab" * 32
    releases = [tmp_path / "apps" / f"r{n}" for n in range(3)]
    for folder in releases:
        folder.mkdir(parents=True)
    tasks = [
        asyncio.create_task(LayerCache(root).attach(key, folder, maker(n)))
        for n, folder in enumerate(releases)
    ]
    while not made:  # the first maker runs, holding the layer's lock
        await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert len(made) == 1
    assert sorted(results) == sorted([EXTRACTED, REUSED, REUSED])
    assert {(f / "node_modules" / "a.js").read_text() for f in releases} == {str(made[0])}


def test_the_host_lock_holds_across_processes(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
            " fcntl.flock(fd, fcntl.LOCK_SH); print('held', flush=True); sys.stdin.read()",
            str(lock),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        assert try_lock(lock) is None  # exclusive: refused while the other process shares it
        shared = try_lock(lock, shared=True)
        assert shared is not None
        os.close(shared)
        child.communicate(timeout=10)  # its stdin closed: it exits, its lock with it
    fd = try_lock(lock)
    assert fd is not None
    os.close(fd)


async def test_a_cleanup_never_removes_a_layer_being_made_or_used(host: Host) -> None:
    apps, cache = host.apps, host.cache
    key = host.first.layers[0].digest
    folder = apps / "one" / "r1"
    folder.mkdir(parents=True)
    inside, go_on = asyncio.Event(), threading.Event()

    async def make(work: Path) -> None:
        (work / "node_modules").mkdir()
        (work / "node_modules" / "a.js").write_text("1")
        inside.set()
        await asyncio.to_thread(go_on.wait, 10)

    attaching = asyncio.create_task(cache.attach(key, folder, make))
    await inside.wait()
    assert cache.sweep() == []  # being made: its lock is held
    assert [p.name for p in (cache.root / ".work").iterdir()]  # the extraction survives
    go_on.set()
    assert await attaching == EXTRACTED
    assert cache.sweep() == []  # linked by a release folder
    assert (folder / "node_modules" / "a.js").read_text() == "1"
    # a cleanup racing composes of new releases: each finds its layer whole
    stop = threading.Event()

    def sweeping() -> None:
        while not stop.is_set():
            cache.sweep()

    sweeper = threading.Thread(target=sweeping)
    sweeper.start()
    try:
        for n in range(30):
            release = apps / "one" / f"race{n}"
            await asyncio.to_thread(release.mkdir)
            await cache.attach(key, release, make)
            assert (release / "node_modules" / "a.js").read_text() == "1"
            if n % 2:  # a retired release: its layer may go (and come back)
                await asyncio.to_thread(os.unlink, release / "node_modules")
    finally:
        stop.set()
        sweeper.join()
    for n in range(0, 30, 2):
        assert (apps / "one" / f"race{n}" / "node_modules" / "a.js").is_file()
    (folder / "node_modules").unlink()
    for n in range(0, 30, 2):
        (apps / "one" / f"race{n}" / "node_modules").unlink()
    assert cache.sweep() == [key]
    assert not cache.has(key) and not cache.layer_path(key).exists()


async def test_a_tampered_cached_layer_is_found_and_extracted_again(host: Host) -> None:
    await host.prepare(host.first)
    cached = host.cache.layer_path(host.first.layers[0].digest) / "left-pad" / "index.js"
    cached.write_text("module.exports = 'pwned';\n")
    record = Recorder()
    folder = await host.prepare(host.second, record)
    assert deps_fetches(record) == 1
    done = record.events[-1][1]
    assert "extracted again" in done and "node_modules/left-pad/index.js was changed" in done
    assert (
        folder / "node_modules" / "left-pad" / "index.js"
    ).read_text() == "module.exports = 1;\n"


async def test_a_tampered_cached_lockfile_is_found_and_extracted_again(host: Host) -> None:
    one = await host.prepare(host.first)
    original = (one / "package-lock.json").read_bytes()
    cached = host.cache.root / host.first.layers[0].digest / "lockfiles" / "package-lock.json"
    cached.write_text("{}\n")
    record = Recorder()
    folder = await host.prepare(host.second, record)
    assert deps_fetches(record) == 1
    assert "lockfiles/package-lock.json was changed" in record.events[-1][1]
    assert (folder / "package-lock.json").read_bytes() == original


async def test_a_touched_but_intact_layer_is_resealed_not_fetched(host: Host) -> None:
    await host.prepare(host.first)
    os.utime(host.cache.layer_path(host.first.layers[0].digest) / "left-pad" / "index.js", (1, 1))
    record = Recorder()
    await host.prepare(host.second, record)
    assert deps_fetches(record) == 0 and "node_modules reused" in record.events[-1][1]


async def test_a_replaced_seal_is_read_again_not_remembered(host: Host) -> None:
    """The seal's fingerprint is remembered only while its file stays the same: a seal
    rewritten since is read again (here one forged to match a tampered tree, which the
    fingerprint check then takes, as it would without the memory)."""
    await host.prepare(host.first)
    key = host.first.layers[0].digest
    assert host.cache._intact(key)
    tampered = host.cache.layer_path(key) / "left-pad" / "index.js"
    tampered.write_text("module.exports = 'pwned';\n")
    assert not host.cache._intact(key)
    seal_file = host.cache.root / key / "seal.json"
    seal = treeseal.read_seal(seal_file)
    assert seal is not None
    forged = treeseal.Seal(treestamp.fingerprint(host.cache.layer_path(key)), seal.entries)
    treeseal.write_seal(seal_file, forged)  # the fingerprint now matches the tampered tree
    assert host.cache._intact(key)  # read again: the check is the fingerprint's, as before
    record = Recorder()
    await host.prepare(host.second, record)
    assert deps_fetches(record) == 0


async def test_an_unfinished_layer_is_made_again_and_a_missing_one_reported(
    tmp_path: Path,
) -> None:
    cache, key = LayerCache(tmp_path / "layers"), "cd" * 32
    (cache.root / key / "node_modules").mkdir(parents=True)  # no seal: a killed extraction
    release = tmp_path / "release"
    release.mkdir()
    assert await cache.attach(key, release, None) == MISSING
    assert not (release / "node_modules").exists()

    async def make(work: Path) -> None:
        (work / "node_modules").mkdir()

    assert await cache.attach(key, release, make) == EXTRACTED


async def test_a_cache_others_may_write_to_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "layers"
    root.mkdir(mode=0o777)
    root.chmod(0o777)
    release = tmp_path / "release"
    release.mkdir()
    with pytest.raises(Fatal, match="writable by no one else"):
        await LayerCache(root).attach("ef" * 32, release, None)


async def test_a_release_made_earlier_is_composed_again_when_its_layer_was_tampered_with(
    host: Host,
) -> None:
    folder = await host.prepare(host.first)
    again = Recorder()
    assert await host.prepare(host.first, again) == folder
    assert again.events == []  # complete and intact: used as it is
    (host.cache.layer_path(host.first.layers[0].digest) / "left-pad" / "extra.js").write_text("1")
    record = Recorder()
    await host.prepare(host.first, record)
    assert "failed its check" in record.events[0][1]
    assert "node_modules/left-pad/extra.js was added" in record.events[0][1]
    assert deps_fetches(record) == 1
    assert not (folder / "node_modules" / "left-pad" / "extra.js").exists()


RACER = """
import asyncio, os, sys, time
from pathlib import Path
from aether.worker.runtimes.layer_cache import LayerCache

root, release, made, go = map(Path, sys.argv[1:5])

async def make(work):
    with open(made, "a") as log:
        log.write(f"{os.getpid()}\\n")
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:  # hold the lock until told
        await asyncio.sleep(0.01)
    (work / "node_modules").mkdir()
    (work / "node_modules" / "a.js").write_text(str(os.getpid()))

release.mkdir(parents=True)
print("ready", flush=True)
print(asyncio.run(LayerCache(root).attach("ab" * 32, release, make)), flush=True)
"""


def test_two_worker_processes_racing_for_a_layer_make_it_once(tmp_path: Path) -> None:
    root, made, go = tmp_path / "layers", tmp_path / "made.log", tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(root), str(tmp_path / f"r{n}"), str(made), str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    outputs = []
    try:
        for racer in racers:
            assert racer.stdout is not None and racer.stdout.readline().strip() == "ready"
        go.touch()
        for racer in racers:
            out, _ = racer.communicate(timeout=60)
            outputs.append(out.strip())
            assert racer.returncode == 0
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.communicate()
    assert sorted(outputs) == sorted([EXTRACTED, REUSED])
    assert len(made.read_text().split()) == 1  # one maker ran
    contents = {(tmp_path / f"r{n}" / "node_modules" / "a.js").read_text() for n in range(2)}
    assert contents == {made.read_text().strip()}
