"""App logs from pod logs through the Kubernetes runtime (kmock on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from test_kubernetes_runtime import FIRST, Recorder, roll_out, settings_for

from aether.errors import BadRequest
from aether.settings import WorkerSettings
from aether.worker.runtimes.base import LogLine
from aether.worker.runtimes.kubernetes import KubernetesRuntime
from aether.worker.runtimes.kubernetes_logs import normalise_stamp, parse_since, pod_notice
from plugins.kube_api import KubeAPI, wait_until
from plugins.kube_cluster import Cluster, init_pod_status, running_pod_status

POD_A = f"hello-{FIRST.deployment_id[:8]}-0"
POD_B = f"hello-{FIRST.deployment_id[:8]}-1"


@pytest.fixture
async def runtime(kube_api: KubeAPI, cluster: Cluster) -> AsyncIterator[KubernetesRuntime]:
    assert kube_api.kubeconfig is not None
    runtime = KubernetesRuntime.from_settings(
        settings_for(kube_api.kubeconfig), WorkerSettings.from_env({})
    )
    await roll_out(runtime, kube_api, cluster, FIRST, Recorder())
    await kube_api.write_log(POD_A, "fetch", "fetched 12 files")
    await kube_api.write_log(POD_A, "app", "listening on 8080")
    await kube_api.write_log(POD_B, "app", "listening on 8080 too")
    await kube_api.write_log(POD_A, "app", "GET / 200")
    yield runtime
    await runtime.stop()


async def collect(lines: AsyncIterator[LogLine]) -> list[LogLine]:
    return [line async for line in lines]


async def test_logs_merge_every_pod_and_container_in_time_order(runtime: KubernetesRuntime) -> None:
    lines = await collect(runtime.logs("hello"))

    assert [line.line for line in lines] == [
        "fetched 12 files",
        "listening on 8080",
        "listening on 8080 too",
        "GET / 200",
    ]
    assert {line.deployment_id for line in lines} == {FIRST.deployment_id}
    assert all(line.stream == "stdout" and line.cursor == line.ts for line in lines)
    assert [line.ts for line in lines] == sorted(line.ts for line in lines)


async def test_tail_container_and_cursor(runtime: KubernetesRuntime) -> None:
    tail = await collect(runtime.logs("hello", tail=2))
    only_app = await collect(runtime.logs("hello", container="app"))
    everything = await collect(runtime.logs("hello"))
    resumed = await collect(runtime.logs("hello", cursor=everything[1].cursor))

    assert [line.line for line in tail] == ["listening on 8080 too", "GET / 200"]
    assert "fetched 12 files" not in [line.line for line in only_app] and len(only_app) == 3
    assert [line.line for line in resumed] == ["listening on 8080 too", "GET / 200"]
    assert len(await collect(runtime.logs("hello", since="5m"))) == 4


async def test_follow_streams_new_lines_and_new_pods(
    runtime: KubernetesRuntime, kube_api: KubeAPI, cluster: Cluster
) -> None:
    stream = runtime.logs("hello", tail=1, follow=True, container="app")
    seen: list[str] = []

    async def reader() -> None:
        async for line in stream:
            seen.append(line.line)

    task = asyncio.create_task(reader())
    try:
        await wait_until(lambda: seen == ["GET / 200"], what="the tail")
        await kube_api.write_log(POD_B, "app", "GET /b 200")
        await wait_until(lambda: "GET /b 200" in seen, what="a followed line")
        await cluster.create_pod("hello", "late", running_pod_status())
        await kube_api.write_log("hello-late", "app", "a new pod speaks")
        await wait_until(lambda: "a new pod speaks" in seen, what="a line of a pod that came later")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert seen.count("GET / 200") == 1  # no line twice


def test_since_and_stamp_parsing() -> None:
    assert parse_since("90s") == (None, 90)
    assert parse_since("2h") == (None, 7200)
    assert parse_since("1.5h") == (None, 5400)  # as the local runtime reads it
    assert parse_since("0.5s") == (None, 1)  # whole seconds for the API, rounded up
    assert parse_since("2024-05-01T10:00:00+02:00") == ("2024-05-01T08:00:00Z", None)
    assert normalise_stamp("2024-05-01T10:00:00.5Z") == "2024-05-01T10:00:00.500000000Z"
    assert normalise_stamp("2024-05-01T10:00:00Z") == "2024-05-01T10:00:00.000000000Z"
    with pytest.raises(BadRequest, match="duration"):
        parse_since("yesterday")
    with pytest.raises(BadRequest, match="too far back"):
        parse_since("99999999999999h")


async def test_a_bad_cursor_is_a_bad_request(runtime: KubernetesRuntime) -> None:
    with pytest.raises(BadRequest, match="not a log cursor"):
        await collect(runtime.logs("hello", cursor="nope"))


# --- saying what is seen where there is no output ------------------------------------------------


def notices(lines: list[LogLine]) -> list[str]:
    return [line.line for line in lines if line.stream == "notice"]


async def test_an_app_without_pods_gets_a_notice_not_an_empty_answer(
    runtime: KubernetesRuntime,
) -> None:
    lines = await collect(runtime.logs("nothing-here"))

    assert notices(lines) == [
        "nothing-here has no pods: nothing is deployed, or its pods are being replaced"
    ]
    assert lines[0].cursor == ""


async def test_pods_not_scheduled_or_still_in_their_init_container_get_notices(
    runtime: KubernetesRuntime, cluster: Cluster
) -> None:
    pending = running_pod_status()
    pending.update(phase="Pending", containerStatuses=[], initContainerStatuses=[])
    pending["conditions"] = [
        {"type": "PodScheduled", "status": "False", "message": "0/3 nodes: Insufficient cpu"}
    ]
    await cluster.create_pod("hello", "zz-pending", pending)
    await cluster.create_pod("hello", "zz-init", init_pod_status())

    lines = await collect(runtime.logs("hello", container="app"))

    assert [line.line for line in lines if line.stream == "stdout"][-1] == "GET / 200"
    assert notices(lines) == [
        "pod hello-zz-pending is not scheduled: 0/3 nodes: Insufficient cpu",
        "pod hello-zz-init is still in its init container (fetch): app has not started",
    ]
    # A notice resumes where the last line did: nothing after it is skipped.
    assert {line.cursor for line in lines if line.stream == "notice"} == {lines[2].cursor}
    fetch = await collect(runtime.logs("hello", container="fetch"))
    assert "pod hello-zz-init" not in " ".join(notices(fetch))  # fetch runs: it has a log


async def test_following_tells_when_a_pod_goes_and_when_one_waits(
    runtime: KubernetesRuntime, kube_api: KubeAPI, cluster: Cluster
) -> None:
    stream = runtime.logs("hello", tail=1, follow=True, container="app")
    seen: list[LogLine] = []

    async def reader() -> None:
        async for line in stream:
            seen.append(line)

    task = asyncio.create_task(reader())
    try:
        await wait_until(lambda: [line.line for line in seen] == ["GET / 200"], what="the tail")
        await cluster.delete("v1/pods", POD_B)
        await wait_until(lambda: f"pod {POD_B} is gone" in notices(seen), what="the gone notice")
        waiting = running_pod_status()
        waiting["containerStatuses"][0]["state"] = {
            "waiting": {"reason": "ImagePullBackOff", "message": "not found"}
        }
        await cluster.create_pod("hello", "late", waiting)
        said = "pod hello-late: app is waiting (ImagePullBackOff: not found)"
        await wait_until(lambda: said in notices(seen), what="the waiting notice")
        await kube_api.write_log(POD_A, "app", "still here")
        await wait_until(lambda: "still here" in [line.line for line in seen], what="a line")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert notices(seen).count(said) == 1  # said when it changed, not on every look


def test_pod_notice_reads_the_pod_status() -> None:
    pod = {"metadata": {"name": "p"}, "status": running_pod_status()}
    assert pod_notice(pod, "app") is None and pod_notice(pod, "fetch") is None
    assert pod_notice({"metadata": {"name": "p"}, "status": {}}, "app") == (
        "pod p: container app has not been created yet"
    )
    initializing = {"metadata": {"name": "p"}, "status": init_pod_status()}
    assert pod_notice(initializing, "fetch") is None
    assert "init container" in (pod_notice(initializing, "app") or "")


async def test_pod_output_is_shipped_to_the_shared_store_once(
    runtime: KubernetesRuntime, kube_api: KubeAPI, database
) -> None:  # type: ignore[no-untyped-def]
    from aether.store import apps as app_store
    from aether.store import logs as log_store
    from aether.worker.logship import LogShipper

    app = await app_store.create_app(database, "hello", owner=None)
    held = {app["id"]: "hello"}

    async def stored() -> list[tuple[str, str]]:
        rows = await log_store.read_after(database, app["id"], 0, limit=100)
        return [(instance, line) for *_, instance, stream, line in rows if stream != "notice"]

    async def ship_until(count: int) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(LogShipper(database, runtime, lambda: held).run(stop))
        try:
            deadline = asyncio.get_running_loop().time() + 20
            while len(await stored()) < count:
                assert asyncio.get_running_loop().time() < deadline, await stored()
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await task

    await ship_until(4)
    assert await stored() == [
        (f"{POD_A}/fetch", "fetched 12 files"),
        (f"{POD_A}/app", "listening on 8080"),
        (f"{POD_B}/app", "listening on 8080 too"),
        (f"{POD_A}/app", "GET / 200"),
    ]
    await kube_api.write_log(POD_B, "app", "GET /later 200")
    await ship_until(5)  # a new shipper resumes after the committed position
    lines = [line for _, line in await stored()]
    assert lines == [
        "fetched 12 files",
        "listening on 8080",
        "listening on 8080 too",
        "GET / 200",
        "GET /later 200",
    ]
