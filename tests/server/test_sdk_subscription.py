"""Manual subscription (auto_subscribe off): subscribe, receive, unsubscribe."""

from __future__ import annotations

import asyncio

import pytest
from kitewire.server import Server
from livekit import rtc

from .conftest import Connect
from .sdk_media import CounterPublisher, CounterReader

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("single_pc", [True, False], ids=["single-pc", "dual-pc"])
async def test_manual_subscribe_and_unsubscribe(server: Server, sdk_rooms: Connect, single_pc: bool) -> None:
    bob = await sdk_rooms("bob", options=rtc.RoomOptions(auto_subscribe=False, single_peer_connection=single_pc))
    published: asyncio.Queue[rtc.RemoteTrackPublication] = asyncio.Queue()
    subscribed: asyncio.Queue[rtc.Track] = asyncio.Queue()
    unsubscribed: asyncio.Queue[str] = asyncio.Queue()
    bob.on("track_published", lambda publication, participant: published.put_nowait(publication))
    bob.on("track_subscribed", lambda track, publication, participant: subscribed.put_nowait(track))
    bob.on("track_unsubscribed", lambda track, publication, participant: unsubscribed.put_nowait(publication.sid))
    alice = await sdk_rooms("alice")
    publisher = CounterPublisher(alice, 320, 240, simulcast=False, codec=rtc.VideoCodec.VP8)
    reader: CounterReader | None = None
    try:
        await publisher.start()
        publication = await asyncio.wait_for(published.get(), 15)
        await asyncio.sleep(1.0)
        assert subscribed.empty(), "subscribed although auto_subscribe is off"
        assert not server.rooms.rooms["room"].participants["bob"].subscriptions
        publication.set_subscribed(True)
        track = await asyncio.wait_for(subscribed.get(), 15)
        reader = CounterReader(track)
        await asyncio.wait_for(reader.first_frame.wait(), 10)
        publication.set_subscribed(False)
        assert await asyncio.wait_for(unsubscribed.get(), 10) == publication.sid
        # The SDK reports the unsubscription locally; the server hears of it just after.
        bob_server = server.rooms.rooms["room"].participants["bob"]
        for _ in range(100):
            if not bob_server.subscriptions:
                break
            await asyncio.sleep(0.05)
        assert not bob_server.subscriptions
    finally:
        await publisher.stop()
        if reader is not None:
            await reader.close()
