"""Lip-sync groundwork at subscribers: a publisher's camera and microphone share one a=msid
stream, and each downtrack's sender reports keep the publisher's capture clock."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from kitewire import rtc as kw
from kitewire.server import Server, ServerConfig
from kitewire.server.downtrack import DownTrack, msid_stream_id
from kitewire.server.participant import Participant
from kitewire.server.uptrack import PublishedTrack, stream_of_source
from livekit.protocol import models as pb_models

from capture_loop import capturing

from .conftest import Connect, make_token
from .sdk_media import CounterPublisher, Voice, subscribed_tracks

pytestmark = pytest.mark.timeout(60)


def _downtracks(server: Server, identity: str) -> list[DownTrack]:
    found: list[DownTrack] = []
    for room in server.rooms.rooms.values():
        for participant in room.participants.values():
            if isinstance(participant, Participant) and participant.identity == identity:
                found += participant.subscriptions.values()
    return found


@contextlib.asynccontextmanager
async def _official_publisher(sdk_rooms: Connect) -> AsyncIterator[str]:
    """An official participant publishing a camera and a microphone; yields its sid."""
    alice = await sdk_rooms("alice")
    camera = CounterPublisher(alice, 320, 240, simulcast=False, codec=1)
    voice = Voice()
    try:
        await camera.start()
        await voice.publish(alice)
        yield alice.local_participant.sid
    finally:
        await camera.stop()
        await voice.stop()


@contextlib.asynccontextmanager
async def _kitewire_publisher(server: Server) -> AsyncIterator[str]:
    """A kitewire participant publishing a camera and a microphone; yields its sid."""
    room = kw.Room()
    await room.connect(server.url, make_token("alice"))
    video = kw.VideoSource(320, 240)
    audio = kw.AudioSource(48_000, 1)
    picture = kw.VideoFrame(320, 240, kw.VideoBufferType.I420, bytearray(320 * 240 * 3 // 2))

    async def speak() -> None:
        while True:
            await audio.capture_frame(kw.AudioFrame.create(48_000, 1, 480))

    speaking = asyncio.get_running_loop().create_task(speak())
    try:
        async with capturing(lambda _: video.capture_frame(picture)):
            camera = kw.LocalVideoTrack.create_video_track("camera", video)
            microphone = kw.LocalAudioTrack.create_audio_track("mic", audio)
            options = kw.TrackPublishOptions(source=kw.TrackSource.SOURCE_CAMERA, simulcast=False)
            await room.local_participant.publish_track(camera, options)
            await room.local_participant.publish_track(
                microphone, kw.TrackPublishOptions(source=kw.TrackSource.SOURCE_MICROPHONE)
            )
            yield room.local_participant.sid
    finally:
        speaking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await speaking
        await room.disconnect()


@pytest.mark.parametrize("publisher", ["official", "kitewire"])
async def test_camera_and_microphone_share_a_stream_and_reports_carry_the_capture_clock(
    server: Server, sdk_rooms: Connect, publisher: str
) -> None:
    bob = await sdk_rooms("bob")
    tracks = subscribed_tracks(bob)
    publishing = _official_publisher(sdk_rooms) if publisher == "official" else _kitewire_publisher(server)
    async with publishing as alice_sid:
        got = [await asyncio.wait_for(tracks.get(), 15) for _ in range(2)]
        # the official SDK still names each track right (the track sid is the msid's track id)
        remote = bob.remote_participants
        published = {sid for participant in remote.values() for sid in participant.track_publications}
        assert {track.sid for track in got} == published and len(published) == 2
        downs: list[DownTrack] = []
        for _ in range(100):
            downs = _downtracks(server, "bob")
            if len(downs) == 2 and all(down.transceiver is not None and down.packets_sent for down in downs):
                break
            await asyncio.sleep(0.1)
        assert len(downs) == 2 and all(down.transceiver is not None for down in downs)
        for down in downs:
            assert down.transceiver is not None
            assert down.track.info.stream == "camera"
            assert down.transceiver.stream_id == f"{alice_sid}|camera"
            assert down.transceiver.track_id == down.track.sid
        # libwebrtc sends its first sender reports within a second or two
        clocks: list[tuple[int, float] | None] = []
        for _ in range(100):
            clocks = []
            for down in downs:
                assert down.transceiver is not None
                media_clock = down.transceiver.sender.media_clock
                clocks.append(media_clock(down.transceiver.sender.ssrc) if media_clock is not None else None)
            if all(clocks):
                break
            await asyncio.sleep(0.1)
        assert all(clocks), "the downtracks never took the publisher's sender reports"
        for down, clock in zip(downs, clocks, strict=True):
            assert down.transceiver is not None and clock is not None
            stats = down.transceiver.sender.streams[down.transceiver.sender.ssrc]
            sent_at = time.time() - (time.monotonic() - stats.last_time)
            rate = down.rewriter.clock_rate
            ticks = ((stats.last_timestamp - clock[0] + 2**31) % 2**32) - 2**31
            captured = clock[1] + ticks / rate
            # on the publisher's clock (this machine's), the last forwarded packet was
            # captured shortly before the server sent it: not after, not seconds before
            assert -0.005 <= sent_at - captured <= 0.5, (down.track.kind, sent_at - captured)


@dataclass
class _Subscriber:
    """The part of a participant its a=msid stream ids depend on."""

    client_info: pb_models.ClientInfo
    context: _Context


@dataclass
class _Context:
    settings: ServerConfig


@dataclass
class _Publisher:
    sid: str


@pytest.mark.parametrize(
    ("sync_streams", "stream", "protocol", "browser", "expected"),
    [
        (True, "camera", 16, "", "PA_pub|camera"),
        (True, "screen", 16, "Chrome", "PA_pub|screen"),
        (False, "camera", 16, "", "PA_pub|TR_mic"),  # the server told not to group
        (True, "", 16, "", "PA_pub|TR_mic"),  # a track of no stream
        (True, "camera", 9, "", "PA_pub|TR_mic"),  # a client that reads the track sid from the stream id
        (True, "camera", 16, "Firefox", "PA_pub|TR_mic"),  # livekit leaves Firefox out too
    ],
)
def test_msid_stream_ids_group_a_stream_only_for_clients_that_take_it(
    sync_streams: bool, stream: str, protocol: int, browser: str, expected: str
) -> None:
    info = pb_models.TrackInfo(sid="TR_mic", type=pb_models.AUDIO, stream=stream)
    track = PublishedTrack(_Publisher("PA_pub"), info, None)  # type: ignore[arg-type]
    subscriber = _Subscriber(
        pb_models.ClientInfo(protocol=protocol, browser=browser), _Context(ServerConfig(sync_streams=sync_streams))
    )
    assert msid_stream_id(track, subscriber) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "stream"),
    [
        (pb_models.TrackSource.CAMERA, "camera"),
        (pb_models.TrackSource.MICROPHONE, "camera"),
        (pb_models.TrackSource.SCREEN_SHARE, "screen"),
        (pb_models.TrackSource.SCREEN_SHARE_AUDIO, "screen"),
        (pb_models.TrackSource.UNKNOWN, "unknown"),
    ],
)
def test_a_track_without_a_stream_joins_its_sources_one(source: int, stream: str) -> None:
    assert stream_of_source(source) == stream


def test_room_sync_streams_is_read_from_the_config_file() -> None:
    config = ServerConfig.dev(port=0)
    assert config.sync_streams
    assert config.apply_mapping({"room": {"sync_streams": False}}) == []
    assert not config.sync_streams
