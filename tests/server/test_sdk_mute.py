"""Mute state travels from the publisher to the other participants."""

from __future__ import annotations

import asyncio

import pytest
from kitewire.server import Server
from livekit import rtc

from .conftest import Connect
from .sdk_media import CounterPublisher

pytestmark = pytest.mark.timeout(60)


async def test_mute_and_unmute_reach_subscribers(server: Server, sdk_rooms: Connect) -> None:
    bob = await sdk_rooms("bob")
    events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    subscribed: asyncio.Queue[str] = asyncio.Queue()
    bob.on("track_muted", lambda participant, publication: events.put_nowait(("muted", publication.sid)))
    bob.on("track_unmuted", lambda participant, publication: events.put_nowait(("unmuted", publication.sid)))
    bob.on("track_subscribed", lambda track, publication, participant: subscribed.put_nowait(publication.sid))
    alice = await sdk_rooms("alice")
    publisher = CounterPublisher(alice, 320, 240, simulcast=False, codec=rtc.VideoCodec.VP8)
    try:
        publication = await publisher.start()
        assert await asyncio.wait_for(subscribed.get(), 15) == publication.sid
        assert publication.track is not None
        publication.track.mute()
        assert await asyncio.wait_for(events.get(), 10) == ("muted", publication.sid)
        server_track = server.rooms.rooms["room"].participants["alice"].published[publication.sid]
        assert server_track.info.muted
        publication.track.unmute()
        assert await asyncio.wait_for(events.get(), 10) == ("unmuted", publication.sid)
        assert not server_track.info.muted
    finally:
        await publisher.stop()
