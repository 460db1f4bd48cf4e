"""Dynacast with the official SDK: a publisher that joined with ``dynacast=True`` stops
sending the simulcast layers nobody watches and resumes them when someone asks.

What the publisher sends is read where it arrives, at the server, per layer
(rid): a layer is live while its packets keep coming. libwebrtc itself drops
upper layers when its bandwidth estimate or the CPU is short (the suite shares
a busy machine), so the tests ask only for "some layer above the lowest", never
for all three.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from kitewire.server import Server
from kitewire.server.uptrack import PublishedTrack
from livekit import rtc

from .conftest import Connect
from .sdk_media import CounterPublisher, CounterReader, subscribed_tracks

pytestmark = pytest.mark.timeout(150)


async def _until(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.2)


def _live(track: PublishedTrack) -> list[int]:
    return list(track.live_layers(time.monotonic()))


def _upper(track: PublishedTrack) -> bool:
    """Whether the lowest layer and one above it arrive."""
    live = _live(track)
    return 0 in live and max(live) > 0


async def _publish(
    server: Server, sdk_rooms: Connect, *, dynacast: bool
) -> tuple[CounterPublisher, PublishedTrack, rtc.Track, rtc.RemoteTrackPublication]:
    bob = await sdk_rooms("bob")
    tracks = subscribed_tracks(bob)
    publications: asyncio.Queue[rtc.RemoteTrackPublication] = asyncio.Queue()
    bob.on("track_subscribed", lambda track, publication, participant: publications.put_nowait(publication))
    alice = await sdk_rooms("alice", options=rtc.RoomOptions(dynacast=dynacast))
    publisher = CounterPublisher(alice, 640, 360, simulcast=True, codec=rtc.VideoCodec.VP8, fps=15)
    publication = await publisher.start()
    track = await asyncio.wait_for(tracks.get(), 20)
    remote_publication = await asyncio.wait_for(publications.get(), 5)
    forwarded = server.rooms.rooms["room"].participants["alice"].published[publication.sid]
    # libwebrtc starts its layers as its bandwidth estimate grows.
    await _until("an upper layer arrives from the publisher", lambda: _upper(forwarded), 40)
    return publisher, forwarded, track, remote_publication


async def test_dynacast_publisher_sends_only_the_layers_watched(server: Server, sdk_rooms: Connect) -> None:
    publisher, forwarded, track, publication = await _publish(server, sdk_rooms, dynacast=True)
    reader = CounterReader(track)
    try:
        publication.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_LOW)
        # A fall is announced once it held for 5 s; then the encoder stops the upper layers.
        await _until("only the low layer arrives", lambda: _live(forwarded) == [0], 20)
        watched = len(reader.counters)
        await asyncio.sleep(2.0)
        assert _live(forwarded) == [0], "an unwatched layer came back"
        assert len(reader.counters) > watched + 10, "the subscriber stopped getting the low layer"

        publication.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_HIGH)
        assert forwarded.dynacast is not None
        await _until(
            f"an upper layer resumes (announced {forwarded.dynacast.announced})", lambda: _upper(forwarded), 30
        )

        # Nobody watching at all: the publisher pauses the track; a subscriber back, it resumes.
        publication.set_subscribed(False)
        await _until("nothing arrives while nobody watches", lambda: _live(forwarded) == [], 20)
        publication.set_subscribed(True)
        await _until("layers resume for a new subscription", lambda: bool(_live(forwarded)), 20)
    finally:
        await reader.close()
        await publisher.stop()


async def test_publisher_without_dynacast_keeps_every_layer(server: Server, sdk_rooms: Connect) -> None:
    publisher, forwarded, _, publication = await _publish(server, sdk_rooms, dynacast=False)
    try:
        publication.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_LOW)
        # Past the 5 s a fall waits: the update was sent, and this publisher ignores it.
        await asyncio.sleep(8.0)
        assert forwarded.dynacast is not None and forwarded.dynacast.announced == 0
        assert _upper(forwarded), f"layers {_live(forwarded)}"
    finally:
        await publisher.stop()
