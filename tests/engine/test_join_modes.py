"""The SDK's two joins end to end against kitewire serve, an official livekit SDK peer on the other
side: ``/rtc/v1`` with one PeerConnection (the default, as livekit 1.2 joins) and legacy ``/rtc``
with two (after a 404 for ``/rtc/v1``, and when asked with ``single_peer_connection=False``).
Video goes both ways in each: official publisher -> kitewire VideoStream, kitewire publisher ->
official VideoStream, each frame's counter read back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from kitewire import rtc
from kitewire.frames.pattern import make_pattern_frame, read_frame_counter
from kitewire.server import Server
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token
from livekit import rtc as lk

from capture_loop import capturing
from futures import resolve_once

from .proxy import legacy_only_proxy

pytestmark = pytest.mark.timeout(120)

WIDTH, HEIGHT = 320, 240
FRAMES = 40


async def counters_of(stream: Any, to_kitewire: Callable[[Any], rtc.VideoFrame]) -> list[int]:
    """Readable frame counters among the first FRAMES frames of ``stream`` (or those within 20 s)."""
    counters: list[int] = []

    async def consume() -> None:
        seen = 0
        async for event in stream:
            counter = read_frame_counter(to_kitewire(event.frame))
            if counter is not None:
                counters.append(counter)
            seen += 1
            if seen >= FRAMES:
                return

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(consume(), 20)
    await stream.aclose()
    return counters


def assert_rising(counters: list[int], where: str) -> None:
    assert len(counters) >= FRAMES // 2, f"only {len(counters)} readable frames {where}"
    assert counters == sorted(counters) and len(set(counters)) == len(counters), counters


def subscribed(room: rtc.Room | lk.Room, identity: str) -> asyncio.Future[Any]:
    """Resolves to the first track ``room`` subscribes to from ``identity``."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def on_subscribed(track: Any, publication: Any, participant: Any) -> None:
        if participant.identity == identity:
            resolve_once(future, track)

    room.on("track_subscribed", on_subscribed)
    return future


async def exchange_video(
    server: Server, kitewire_url: str, room_name: str, options: rtc.RoomOptions
) -> tuple[bool, bool]:
    """kitewire (joining at ``kitewire_url``) and the official SDK (joining the server) each publish
    and view the other; returns whether the server took kitewire's join as single-PeerConnection,
    and whether it made a subscriber PeerConnection for it."""
    ours, theirs = rtc.Room(), lk.Room()
    ours_got, theirs_got = subscribed(ours, "official"), subscribed(theirs, "kitewire")
    our_source, their_source = rtc.VideoSource(WIDTH, HEIGHT), lk.VideoSource(WIDTH, HEIGHT)

    def token(identity: str) -> str:
        return create_token(DEV_API_KEY, DEV_API_SECRET, identity=identity, room=room_name)

    def capture(index: int) -> None:
        frame = make_pattern_frame(index, WIDTH, HEIGHT)
        our_source.capture_frame(frame)
        their_source.capture_frame(lk.VideoFrame(WIDTH, HEIGHT, lk.VideoBufferType.I420, bytes(frame.data)))

    try:
        await ours.connect(kitewire_url, token("kitewire"), options)
        await theirs.connect(server.url, token("official"))
        participant = server.rooms.rooms[room_name].participants["kitewire"]
        assert ours._session.engine is not None and ours._session.engine.single_pc == participant.single_pc
        await ours.local_participant.publish_track(
            rtc.LocalVideoTrack.create_video_track("kitewire-cam", our_source),
            rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA),
        )
        await theirs.local_participant.publish_track(
            lk.LocalVideoTrack.create_video_track("official-cam", their_source),
            lk.TrackPublishOptions(source=lk.TrackSource.SOURCE_CAMERA, simulcast=False),
        )
        async with capturing(capture):
            our_track, their_track = await asyncio.wait_for(asyncio.gather(ours_got, theirs_got), 20)
            at_kitewire, at_official = await asyncio.gather(
                counters_of(rtc.VideoStream(our_track), lambda frame: frame),
                counters_of(
                    lk.VideoStream(their_track),
                    lambda frame: rtc.VideoFrame(frame.width, frame.height, frame.type, bytes(frame.data)),
                ),
            )
    finally:
        await theirs.disconnect()
        await ours.disconnect()
        await their_source.aclose()
    assert_rising(at_kitewire, "from the official publisher at kitewire")
    assert_rising(at_official, "from kitewire at the official viewer")
    return participant.single_pc, participant.subscriber_pc is not None


async def test_default_join_is_rtc_v1_with_one_peer_connection(server: Server) -> None:
    assert await exchange_video(server, server.url, "join-v1", rtc.RoomOptions()) == (True, False)


async def test_a_404_for_rtc_v1_falls_back_to_rtc_with_two_peer_connections(server: Server) -> None:
    async with legacy_only_proxy(server.url) as front:
        assert await exchange_video(server, front, "join-fallback", rtc.RoomOptions()) == (False, True)


async def test_single_peer_connection_false_joins_over_rtc(server: Server) -> None:
    options = rtc.RoomOptions(single_peer_connection=False)
    assert await exchange_video(server, server.url, "join-legacy", options) == (False, True)
