"""The lane gate: bulk senders wait while a transactional send is in flight."""

from __future__ import annotations

import asyncio

from sojourn.channels.priority import LaneGate


async def test_bulk_waits_for_transactional_sends() -> None:
    gate = LaneGate()
    await asyncio.wait_for(gate.bulk_turn(), 1)  # idle: no wait

    order: list[str] = []
    release = asyncio.Event()

    async def transactional() -> None:
        async with gate.transactional():
            order.append("transactional started")
            await release.wait()
            order.append("transactional done")

    async def bulk() -> None:
        await gate.bulk_turn()
        order.append("bulk round")

    first = asyncio.create_task(transactional())
    await asyncio.sleep(0)
    second = asyncio.create_task(bulk())
    await asyncio.sleep(0.01)
    assert order == ["transactional started"] and gate.transactional_in_flight == 1
    release.set()
    await asyncio.gather(first, second)
    assert order == ["transactional started", "transactional done", "bulk round"]
    assert gate.transactional_in_flight == 0


async def test_the_gate_stays_closed_until_the_last_transactional_send_ends() -> None:
    gate = LaneGate()
    async with gate.transactional():
        async with gate.transactional():
            pass
        assert gate.transactional_in_flight == 1
        bulk = asyncio.create_task(gate.bulk_turn())
        await asyncio.sleep(0.01)
        assert not bulk.done()
    await asyncio.wait_for(bulk, 1)
