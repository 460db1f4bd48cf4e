"""A dropped signal connection: livekit's SDK tries to resume, is told to rejoin,
and is back in the room receiving video."""

from __future__ import annotations

import asyncio

import pytest
from kitewire.server import Server
from livekit import rtc

from .conftest import Connect
from .sdk_media import CounterPublisher, CounterReader, subscribed_tracks

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("single_pc", [True, False], ids=["single-pc", "dual-pc"])
async def test_rejoin_after_signal_drop(server: Server, sdk_rooms: Connect, single_pc: bool) -> None:
    bob = await sdk_rooms("bob", options=rtc.RoomOptions(single_peer_connection=single_pc))
    tracks = subscribed_tracks(bob)
    reconnected = asyncio.Event()
    bob.on("reconnected", lambda: reconnected.set())
    alice = await sdk_rooms("alice")
    publisher = CounterPublisher(alice, 320, 240, simulcast=False, codec=rtc.VideoCodec.VP8)
    readers: list[CounterReader] = []
    try:
        await publisher.start()
        readers.append(CounterReader(await asyncio.wait_for(tracks.get(), 15)))
        await asyncio.wait_for(readers[0].first_frame.wait(), 10)
        old = server.rooms.rooms["room"].participants["bob"]
        await old.connection.websocket.close()  # the network drops bob's signal socket
        await asyncio.wait_for(reconnected.wait(), 15)
        new = server.rooms.rooms["room"].participants["bob"]
        assert new.sid != old.sid and old.closed
        readers.append(CounterReader(await asyncio.wait_for(tracks.get(), 15)))
        await asyncio.wait_for(readers[1].first_frame.wait(), 10)
        await asyncio.sleep(0.5)
        assert len(readers[1].counters) >= 5
    finally:
        await publisher.stop()
        for reader in readers:
            await reader.close()
