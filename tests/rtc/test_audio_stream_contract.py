"""AudioStream keeps VideoStream's contract: it ends on unpublish, unsubscribe, disconnect and
aclose, and a stream from a participant follows it across a republish."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from audio_peers import RATE, RoomFactory, subscribed_audio
from kitewire import rtc

from audio_signal import sine

pytestmark = pytest.mark.asyncio

MIC = rtc.TrackSource.SOURCE_MICROPHONE


@contextlib.asynccontextmanager
async def tone(source: rtc.AudioSource) -> AsyncIterator[None]:
    """Keep ``source`` sounding until the block ends."""

    async def run() -> None:
        piece = rtc.AudioFrame.from_ndarray(sine(440, 0.02), RATE)
        while True:
            await source.capture_frame(piece)

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def publish(room: rtc.Room, name: str = "mic") -> tuple[rtc.AudioSource, rtc.LocalTrackPublication]:
    source = rtc.AudioSource(RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track(name, source)
    return source, await room.local_participant.publish_track(track, rtc.TrackPublishOptions(source=MIC))


async def frames_then_end(stream: rtc.AudioStream, end: asyncio.Future[None], timeout: float = 15.0) -> int:
    """Frames read before ``end`` resolves, then the stream must stop by itself."""
    count = 0

    async def read() -> None:
        nonlocal count
        async for _ in stream:
            count += 1
            if count == 10 and not end.done():
                end.set_result(None)

    await asyncio.wait_for(read(), timeout)
    return count


async def test_stream_ends_when_the_track_is_unpublished(connect_room: RoomFactory) -> None:
    speaker, listener = await connect_room("unpub-speaker"), await connect_room("unpub-listener")
    source, publication = await publish(speaker)
    async with tone(source):
        remote = await subscribed_audio(listener)
        stream = rtc.AudioStream(remote, sample_rate=16_000, num_channels=1, frame_size_ms=10)
        heard: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        reader = asyncio.create_task(frames_then_end(stream, heard))
        await asyncio.wait_for(heard, 15)
        await speaker.local_participant.unpublish_track(publication.sid)
        assert await reader >= 10
    # frames had the stream's own format
    assert stream.sample_rate == 16_000


async def test_stream_ends_on_unsubscribe_and_on_disconnect(connect_room: RoomFactory) -> None:
    speaker, listener = await connect_room("sub-speaker"), await connect_room("sub-listener")
    source, _ = await publish(speaker)
    async with tone(source):
        remote = await subscribed_audio(listener)
        first = rtc.AudioStream(remote)
        heard: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        reader = asyncio.create_task(frames_then_end(first, heard))
        await asyncio.wait_for(heard, 15)
        publication = next(iter(next(iter(listener.remote_participants.values())).track_publications.values()))
        assert isinstance(publication, rtc.RemoteTrackPublication)
        publication.set_subscribed(False)
        assert await reader >= 10
        publication.set_subscribed(True)
        again = await subscribed_audio(listener)
        second = rtc.AudioStream(again)
        heard = asyncio.get_running_loop().create_future()
        reader = asyncio.create_task(frames_then_end(second, heard))
        await asyncio.wait_for(heard, 15)
        await listener.disconnect()
        assert await reader >= 10


async def test_stream_from_participant_follows_a_republish_and_aclose_ends_it(connect_room: RoomFactory) -> None:
    speaker, listener = await connect_room("re-speaker"), await connect_room("re-listener")
    source, publication = await publish(speaker)
    async with tone(source):
        await subscribed_audio(listener)
        participant = listener.remote_participants["re-speaker"]
        stream = rtc.AudioStream.from_participant(participant=participant, track_source=MIC, frame_size_ms=20)
        count = 0
        passed_republish = asyncio.Event()

        async def read() -> None:
            nonlocal count
            async for _ in stream:
                count += 1
                if count == 10:
                    passed_republish.set()

        reader = asyncio.create_task(read())
        await asyncio.wait_for(passed_republish.wait(), 15)
        await speaker.local_participant.unpublish_track(publication.sid)
        await asyncio.sleep(0.5)
        before = count
        republished = rtc.LocalAudioTrack.create_audio_track("mic-again", source)
        await speaker.local_participant.publish_track(republished, rtc.TrackPublishOptions(source=MIC))
        for _ in range(150):
            if count >= before + 10:
                break
            await asyncio.sleep(0.1)
        assert count >= before + 10, "the stream did not follow the republished track"
        await stream.aclose()
        await asyncio.wait_for(reader, 5)


async def test_bad_stream_arguments_are_value_errors(connect_room: RoomFactory) -> None:
    source = rtc.AudioSource(RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("local", source)
    with pytest.raises(ValueError, match="sample_rate"):
        rtc.AudioStream(track, sample_rate=7)
    with pytest.raises(ValueError, match="num_channels"):
        rtc.AudioStream(track, num_channels=0)
    with pytest.raises(ValueError, match="frame_size_ms"):
        rtc.AudioStream(track, frame_size_ms=0)
    with pytest.raises(ValueError, match="capacity"):
        rtc.AudioStream(track, capacity=-1)
    with pytest.raises(ValueError, match="AudioSource"):
        rtc.LocalAudioTrack.create_audio_track("x", object())  # type: ignore[arg-type]
    # a local track's stream hears the source, resampled and cut as asked
    stream = rtc.AudioStream(track, sample_rate=16_000, frame_size_ms=10, capacity=5)
    await source.capture_frame(rtc.AudioFrame.from_ndarray(sine(440, 0.2), RATE))
    event = await asyncio.wait_for(stream.__anext__(), 5)
    assert (event.frame.sample_rate, event.frame.samples_per_channel) == (16_000, 160)
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    await source.aclose()
