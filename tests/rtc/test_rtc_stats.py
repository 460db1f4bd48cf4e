"""Room.get_rtc_stats() and Track.get_stats(): livekit's RtcStats shape, filled from the
transport's and the pipelines' real counters (a kitewire publisher and viewer through
the kitewire server)."""

from __future__ import annotations

import asyncio

import pytest
from kitewire import rtc
from kitewire.frames.pattern import make_pattern_frame, read_frame_counter
from kitewire.server import Server
from test_official_sdk import first_subscription, read_counters, token_for

from capture_loop import capturing

WIDTH, HEIGHT = 640, 360


def by_kind(stats: list[rtc.stats.RtcStats]) -> dict[str, list[rtc.stats.RtcStats]]:
    kinds: dict[str, list[rtc.stats.RtcStats]] = {}
    for item in stats:
        kind = item.WhichOneof("stats")
        assert kind is not None
        kinds.setdefault(kind, []).append(item)
    return kinds


async def test_stats_count_what_was_really_sent_and_received(server: Server) -> None:
    viewer, publisher = rtc.Room(), rtc.Room()
    with pytest.raises(RuntimeError, match="isn't connected"):
        await viewer.get_rtc_stats()
    subscribed = first_subscription(viewer)
    source = rtc.VideoSource(WIDTH, HEIGHT)
    track = rtc.LocalVideoTrack.create_video_track("camera", source)
    assert await track.get_stats() == []  # not published yet
    try:
        await viewer.connect(server.url, token_for("viewer", "stats-1"))
        await publisher.connect(server.url, token_for("publisher", "stats-1"))
        await publisher.local_participant.publish_track(track, rtc.TrackPublishOptions(simulcast=False))

        def capture(index: int) -> None:
            source.capture_frame(make_pattern_frame(index, WIDTH, HEIGHT))

        async with capturing(capture):
            remote_track, _, _ = await asyncio.wait_for(subscribed, 20)
            counters = await read_counters(rtc.VideoStream(remote_track), read_frame_counter, frames=30)
            sent = await publisher.get_rtc_stats()
            received = await viewer.get_rtc_stats()
            track_sent = await track.get_stats()
            track_received = await remote_track.get_stats()
    finally:
        await viewer.disconnect()
        await publisher.disconnect()
        await source.aclose()
    readable = [c for c in counters if c is not None]
    assert len(readable) >= 20

    out_kinds = by_kind(sent.publisher_stats)
    (outbound,) = out_kinds["outbound_rtp"]
    assert outbound.outbound_rtp is not None
    assert outbound.outbound_rtp.stream.kind == "video" and outbound.outbound_rtp.stream.ssrc
    assert outbound.outbound_rtp.sent.packets_sent >= len(readable)
    assert outbound.outbound_rtp.sent.bytes_sent > 10_000
    assert outbound.outbound_rtp.outbound.frames_encoded >= len(readable)
    assert outbound.outbound_rtp.outbound.key_frames_encoded >= 1
    assert (outbound.outbound_rtp.outbound.frame_width, outbound.outbound_rtp.outbound.frame_height) == (640, 360)
    (codec,) = out_kinds["codec"]
    assert codec.codec is not None and codec.codec.codec.mime_type.lower() == "video/vp8"
    assert outbound.outbound_rtp.stream.codec_id == codec.codec.rtc.id
    assert "remote_inbound_rtp" in out_kinds and "peer_connection" in out_kinds

    in_kinds = by_kind(received.subscriber_stats)
    (inbound,) = in_kinds["inbound_rtp"]
    assert inbound.inbound_rtp is not None and inbound.HasField("inbound_rtp")
    assert inbound.inbound_rtp.inbound.track_identifier == remote_track.sid
    assert inbound.inbound_rtp.received.packets_received >= len(readable)
    assert inbound.inbound_rtp.inbound.frames_decoded >= len(readable)
    assert inbound.inbound_rtp.inbound.key_frames_decoded >= 1
    assert (inbound.inbound_rtp.inbound.frame_width, inbound.inbound_rtp.inbound.frame_height) == (640, 360)
    assert inbound.inbound_rtp.rtc.timestamp > 1_600_000_000_000  # ms since the epoch

    # a track's stats are its own streams only
    assert {item.WhichOneof("stats") for item in track_sent} == {"outbound_rtp", "remote_inbound_rtp", "codec"}
    assert {item.WhichOneof("stats") for item in track_received} == {"inbound_rtp", "codec"}
