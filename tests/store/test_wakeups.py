"""Process-local wake-ups: a poke reaches the subscribers of its topic, and only them."""

from __future__ import annotations

import asyncio
import threading

from aether.store import wakeups


async def test_a_poke_wakes_the_subscribers_of_its_topic_only() -> None:
    with (
        wakeups.subscribe("deployment:a") as mine,
        wakeups.subscribe("deployment:b") as other,
    ):
        wakeups.poke("deployment:a")
        assert await mine.wait(30)
        assert not await other.wait(0.01)


async def test_a_poke_before_the_wait_is_not_lost() -> None:
    with wakeups.subscribe(wakeups.NEW_DEPLOYMENT) as fresh:
        wakeups.poke(wakeups.NEW_DEPLOYMENT)  # lands between the subscriber's read and its wait
        assert await fresh.wait(30)


async def test_a_poke_from_another_thread_wakes_the_loop() -> None:
    with wakeups.subscribe("deployment:x") as changed:
        threading.Thread(target=wakeups.poke, args=("deployment:x",)).start()
        assert await changed.wait(30)


async def test_a_shared_event_is_set_by_every_poke() -> None:
    wake = asyncio.Event()
    with wakeups.subscribe(wakeups.NEW_DEPLOYMENT, wake):
        wakeups.poke(wakeups.NEW_DEPLOYMENT)
        assert wake.is_set()
        wake.clear()
        wakeups.poke(wakeups.NEW_DEPLOYMENT)
        assert wake.is_set()


async def test_leaving_the_block_unsubscribes() -> None:
    with wakeups.subscribe("deployment:gone"):
        pass
    wakeups.poke("deployment:gone")  # nobody left: nothing to do, nothing kept
    assert "deployment:gone" not in wakeups._subscribers
