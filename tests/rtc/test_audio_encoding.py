"""TrackPublishOptions for audio, seen from an official subscriber through kitewire serve:
``dtx`` makes a silent track cost almost nothing on the wire while the subscriber's AudioStream
plays on, and ``audio_encoding.max_bitrate`` sets the Opus bitrate."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from audio_peers import RATE, Heard, listen, measured, play, sound_start
from kitewire import rtc
from kitewire.server import Server
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token
from livekit import rtc as lk

from audio_signal import sine

SECONDS = 5.0


def _token(identity: str, room: str) -> str:
    return create_token(DEV_API_KEY, DEV_API_SECRET, identity=identity, room=room)


async def _audio_tracks(room: lk.Room, count: int, timeout: float = 20.0) -> dict[str, lk.RemoteAudioTrack]:
    """The official room's subscribed audio tracks by publisher identity, once ``count`` arrived."""
    found: dict[str, lk.RemoteAudioTrack] = {}
    done = asyncio.Event()

    def on_track(track: Any, publication: Any, participant: Any) -> None:
        if isinstance(track, lk.RemoteAudioTrack):
            found[participant.identity] = track
            if len(found) >= count:
                done.set()

    room.on("track_subscribed", on_track)
    await asyncio.wait_for(done.wait(), timeout)
    return found


async def _wire_bytes(track: lk.RemoteAudioTrack) -> int | None:
    """Bytes with RTP headers the official subscriber received of ``track`` (None before any)."""
    for stats in await track.get_stats():
        if stats.WhichOneof("stats") == "inbound_rtp":
            inbound = stats.inbound_rtp.inbound
            return int(inbound.bytes_received + inbound.header_bytes_received)
    return None


async def _publish(url: str, room_name: str, identity: str, options: rtc.TrackPublishOptions) -> tuple[rtc.Room, Any]:
    room = rtc.Room()
    await room.connect(url, _token(identity, room_name))
    source = rtc.AudioSource(RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track(identity, source)
    await room.local_participant.publish_track(track, options)
    return room, source


async def _measure(
    server: Server, room_name: str, signals: dict[str, tuple[rtc.TrackPublishOptions, np.ndarray]]
) -> dict[str, tuple[int, Heard]]:
    """Each publisher plays its signal; what the official subscriber received: (wire bytes, heard)."""
    listener = lk.Room()
    rooms: list[rtc.Room] = []
    try:
        await listener.connect(server.url, _token("official-listener", room_name))
        arriving = asyncio.create_task(_audio_tracks(listener, len(signals)))
        sources = {}
        for identity, (options, _) in signals.items():
            room, sources[identity] = await _publish(server.url, room_name, identity, options)
            rooms.append(room)
        tracks = await arriving
        heard = {identity: Heard() for identity in signals}
        readers = [
            asyncio.create_task(
                listen(lk.AudioStream(tracks[identity], sample_rate=RATE, num_channels=1), heard[identity], SECONDS + 4)
            )
            for identity in signals
        ]
        before = {identity: await _wire_bytes(tracks[identity]) or 0 for identity in signals}
        await asyncio.gather(*(play(sources[identity], signal) for identity, (_, signal) in signals.items()))
        await asyncio.gather(*(source.wait_for_playout() for source in sources.values()))
        await asyncio.sleep(0.5)
        after = {identity: await _wire_bytes(tracks[identity]) for identity in signals}
        await asyncio.gather(*readers)
        assert all(received is not None for received in after.values()), after
        return {identity: ((after[identity] or 0) - before[identity], heard[identity]) for identity in signals}
    finally:
        for room in rooms:
            await asyncio.wait_for(room.disconnect(), 10)
        await listener.disconnect()


async def test_dtx_sends_almost_nothing_for_silence_and_the_official_subscriber_plays_on(server: Server) -> None:
    silence = np.zeros(int(SECONDS * RATE), dtype=np.int16)
    on = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE, dtx=True)
    off = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE, dtx=False)
    got = await _measure(server, "dtx", {"dtx-on": (on, silence), "dtx-off": (off, silence)})
    (on_bytes, on_heard), (off_bytes, off_heard) = got["dtx-on"], got["dtx-off"]
    print(f"silence for {SECONDS} s on the wire: dtx on {on_bytes} B, off {off_bytes} B")
    assert off_bytes > 0
    assert on_bytes < 0.25 * off_bytes, (on_bytes, off_bytes)
    for heard in (on_heard, off_heard):
        # the subscriber's stream kept yielding (silence) through the suppressed stretch
        assert len(heard.samples()) >= 0.9 * SECONDS * RATE
        assert heard.largest_arrival_gap() < 0.25
        assert not np.abs(heard.samples().astype(np.int32)).max() > 100


async def test_audio_encoding_max_bitrate_sets_the_opus_bitrate(server: Server) -> None:
    tone = sine(440, SECONDS)
    low = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    low.audio_encoding.max_bitrate = 12_000  # type: ignore[union-attr]  # livekit's way to set it
    high = rtc.TrackPublishOptions(
        source=rtc.TrackSource.SOURCE_MICROPHONE, audio_encoding=rtc.AudioEncoding(max_bitrate=96_000)
    )
    got = await _measure(server, "bitrate", {"low": (low, tone), "high": (high, tone)})
    (low_bytes, low_heard), (high_bytes, high_heard) = got["low"], got["high"]
    print(f"{SECONDS} s of a 440 Hz tone on the wire: 12 kbps {low_bytes} B, 96 kbps {high_bytes} B")
    # Opus in VBR spends less than the ceiling on a pure tone; the ratio still shows the setting
    assert high_bytes > 2 * low_bytes, (low_bytes, high_bytes)
    assert low_bytes * 8 / SECONDS < 12_000 * 1.5 + 50 * 8 * 60  # payload near 12 kbps, plus headers
    for heard in (low_heard, high_heard):
        samples = heard.samples()[:, 0]
        start = sound_start(samples)
        assert measured(samples[start + RATE : start + 3 * RATE]) == pytest.approx(440, abs=1)


def test_a_bitrate_opus_cannot_do_is_a_value_error() -> None:
    for wrong in (5_000, 600_000, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_bitrate"):
            rtc.TrackPublishOptions(audio_encoding=rtc.AudioEncoding(max_bitrate=wrong))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="AudioEncoding"):
        rtc.TrackPublishOptions(audio_encoding=rtc.VideoEncoding())  # type: ignore[arg-type]
    assert rtc.AudioEncoding().opus_bitrate(2) == 64_000 and rtc.AudioEncoding(20_000).opus_bitrate(1) == 20_000


async def test_a_bitrate_set_after_the_options_were_made_is_checked_at_publish(server: Server) -> None:
    room = rtc.Room()
    try:
        await room.connect(server.url, _token("wrong-bitrate", "wrong"))
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        options.audio_encoding.max_bitrate = 1_000  # type: ignore[union-attr]
        track = rtc.LocalAudioTrack.create_audio_track("mic", rtc.AudioSource(RATE, 1))
        with pytest.raises(ValueError, match="max_bitrate"):
            await room.local_participant.publish_track(track, options)
        assert not room.local_participant.track_publications
    finally:
        await room.disconnect()
