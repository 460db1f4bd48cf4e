"""LocalParticipant.set_track_subscription_permissions from kitewire, enforced by the kitewire
server, seen by official subscribers: the denied one gets nothing until it is allowed."""

from __future__ import annotations

import asyncio

import pytest
from kitewire import rtc
from kitewire.server import Server
from livekit import rtc as lk
from test_e2ee import HEIGHT, WIDTH, capture_kitewire, official_counter
from test_official_sdk import assert_counters_rise, first_subscription, read_counters, token_for

from capture_loop import capturing


async def test_only_allowed_participants_receive_until_everyone_is_allowed(server: Server) -> None:
    allowed, denied, publisher = lk.Room(), lk.Room(), rtc.Room()
    allowed_subscribed, denied_subscribed = first_subscription(allowed), first_subscription(denied)
    source = rtc.VideoSource(WIDTH, HEIGHT)
    try:
        await allowed.connect(server.url, token_for("allowed", "permissions-1"))
        await denied.connect(server.url, token_for("denied", "permissions-1"))
        await publisher.connect(server.url, token_for("publisher", "permissions-1"))
        publisher.local_participant.set_track_subscription_permissions(
            allow_all_participants=False,
            participant_permissions=[rtc.ParticipantTrackPermission(participant_identity="allowed", allow_all=True)],
        )
        track = rtc.LocalVideoTrack.create_video_track("camera", source)
        await publisher.local_participant.publish_track(track, rtc.TrackPublishOptions(simulcast=False))
        async with capturing(capture_kitewire(source)):
            allowed_track, _, _ = await asyncio.wait_for(allowed_subscribed, 20)
            at_allowed = await read_counters(lk.VideoStream(allowed_track), official_counter, frames=20)
            # the allowed one has had its media for a while: the denied one got no track at all
            assert not denied_subscribed.done()
            publisher.local_participant.set_track_subscription_permissions(allow_all_participants=True)
            denied_track, _, _ = await asyncio.wait_for(denied_subscribed, 20)
            at_denied = await read_counters(lk.VideoStream(denied_track), official_counter, frames=20)
    finally:
        await publisher.disconnect()
        await allowed.disconnect()
        await denied.disconnect()
        await source.aclose()
    assert_counters_rise(at_allowed, 10, "at the allowed subscriber")
    assert_counters_rise(at_denied, 10, "at the subscriber allowed later")


async def test_bad_permissions_are_refused_clearly(server: Server) -> None:
    room = rtc.Room()
    await room.connect(server.url, token_for("someone", "permissions-2"))
    try:
        with pytest.raises(ValueError, match="participant_permissions"):
            room.local_participant.set_track_subscription_permissions(
                allow_all_participants=False, participant_permissions=[rtc.ParticipantTrackPermission()]
            )
    finally:
        await room.disconnect()
    with pytest.raises(RuntimeError, match="not connected"):
        room.local_participant.set_track_subscription_permissions(allow_all_participants=True)
