"""RemoteEngine: an RtcEngine that runs in the media process, seen from the application.

It has the interface of :class:`~kitewire.engine.handle.EngineHandle`. Commands go
to the child by name and are awaited for their result or exception; the child's
listener events come back by name and are handed to this engine's listener on the
loop that created it, in the order the child sent them (a command's result arrives
after every event the command caused, as in-process). Decoded frames arrive as
views of shared memory and go to the consumer routed for their track; published
frames go to the child through a :class:`RemotePublishPipeline`, each with its
metadata. Audio crosses as plain PCM bytes in the messages themselves (20 ms frames
are small): published through a :class:`RemoteAudioPublishPipeline`, received as
``push_audio`` calls on the routed consumer, in order with the events.

When the media process dies the session is lost (``on_connection_lost`` with
MEDIA_FAILURE, the exit status logged): the ReconnectingEngine then rejoins with a
new RemoteEngine, which starts a new media process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from livekit.protocol import models
from livekit.protocol import rtc as signal_pb

from kitewire.engine.handle import (
    AudioConsumer,
    EngineError,
    EngineListener,
    FrameConsumer,
    JoinParameters,
    spawn_owned,
)
from kitewire.engine.stats import EngineStats
from kitewire.frames import VideoFrame
from kitewire.frames.audio_frame import AudioFrame
from kitewire.media.e2ee_frame import KeySet
from kitewire.media.packet_trailer import FrameMetadata

from .frame_link import PUBLISH_SLOTS, FrameInfo
from .supervisor import MediaProcess

__all__ = ["RemoteAudioPublishPipeline", "RemoteEngine", "RemotePublishPipeline", "RemotePublished"]

logger = logging.getLogger("kitewire.engine.process")

# how often the application tells the child whether a received track has consumers
_WANTED_POLL_INTERVAL = 0.2


@dataclass(frozen=True)
class ReceiveCounters:
    """A received track's decode counters, as of its latest frame."""

    frames_decoded: int = 0
    nacks_sent: int = 0
    keyframe_requests_sent: int = 0


@dataclass(frozen=True)
class AudioReceiveCounters:
    """A received audio track's counters, as of its latest PCM."""

    packets_lost: int = 0
    frames_concealed: int = 0
    frames_recovered: int = 0


class _RemotePublishSink:
    """What the application's ends of published tracks share: mute, end, close, bytes sent."""

    def __init__(self, engine: RemoteEngine, process: MediaProcess, track_sid: str) -> None:
        self._engine = engine
        self._process = process
        self._track_sid = track_sid
        self._key = (engine.engine_id, track_sid)
        self._muted = False
        self._closed = False
        self.bytes_sent = 0

    @property
    def muted(self) -> bool:
        """While muted, captured frames are dropped (here, before they cost a copy)."""
        return self._muted

    @muted.setter
    def muted(self, value: bool) -> None:
        self._muted = value
        self._engine.spawn(self._engine.call("set_publish_muted", self._track_sid, value))

    def on_end(self) -> None:
        """The source closed."""
        if not self._closed:
            self._engine.spawn(self._engine.call("end_publish_input", self._track_sid))

    def close(self) -> None:
        """No more frames."""
        self._closed = True


class RemotePublishPipeline(_RemotePublishSink):
    """The application's end of a published video track: frames into shared memory, to the child's encoder."""

    #: on_frame copies the pixels into a slot before it returns (the source needs no copy of its own)
    copies_frames = True

    def __init__(self, engine: RemoteEngine, process: MediaProcess, track_sid: str) -> None:
        super().__init__(engine, process, track_sid)
        self._writer = process.link.writer(PUBLISH_SLOTS)

    @property
    def frames_dropped(self) -> int:
        """Frames not handed over because the child still held every slot."""
        return self._writer.frames_dropped

    def on_frame(
        self, frame: VideoFrame, timestamp_us: int, rotation: int, metadata: FrameMetadata | None = None
    ) -> None:
        """Copy a captured frame into a free slot and announce it with its metadata
        (any thread; never waits for a loop)."""
        if self._closed or self._muted:
            return
        info = FrameInfo(frame.width, frame.height, frame.type, timestamp_us, rotation, (), metadata)
        self._writer.send(self._key, frame, info)

    def close(self) -> None:
        """No more frames; the ring is freed."""
        super().close()
        self._writer.close()


class RemoteAudioPublishPipeline(_RemotePublishSink):
    """The application's end of a published audio track: PCM over the control socket, to the
    child, which plays it out in real time to its encoder."""

    #: takes each captured frame at once (the AudioSource does not pace it): the media
    #: process plays the audio out, so it keeps flowing while the application holds the GIL
    paces_audio = True

    def on_frame(
        self, frame: AudioFrame, timestamp_us: int, rotation: int, metadata: FrameMetadata | None = None
    ) -> None:
        """Send a captured frame of PCM (the event loop; a few KB, never waits for the child)."""
        if self._closed or self._muted:
            return
        pcm = bytes(frame.data.cast("B"))
        self._process.post(
            ("audio", self._key, pcm, frame.sample_rate, frame.num_channels, frame.samples_per_channel, timestamp_us)
        )

    def clear_audio(self) -> None:
        """The source cleared its queue: the child drops what it has not played out yet."""
        if not self._closed:
            self._process.post(("audio_clear", self._key))


@dataclass
class RemotePublished:
    """What :meth:`RemoteEngine.publish_video` and :meth:`RemoteEngine.publish_audio` return."""

    info: models.TrackInfo
    pipeline: RemotePublishPipeline | RemoteAudioPublishPipeline


class RemoteEngine:
    """An engine session in the media process (see the module docstring)."""

    def __init__(self, listener: EngineListener) -> None:
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        self._process: MediaProcess | None = None
        self.engine_id = 0
        self.join: signal_pb.JoinResponse | None = None
        self._single_pc = False
        self._joined = False
        self._closed = False
        self._lost = False
        self._disconnect_reported = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._remote_tracks: set[str] = set()
        self._consumers: dict[str, FrameConsumer] = {}
        self._audio_tracks: set[str] = set()
        self._audio_consumers: dict[str, AudioConsumer] = {}
        self._wanted: dict[str, bool] = {}
        self._counters: dict[str, ReceiveCounters] = {}
        self._audio_counters: dict[str, AudioReceiveCounters] = {}
        self._published: dict[str, RemotePublishPipeline | RemoteAudioPublishPipeline] = {}

    @property
    def connected(self) -> bool:
        """True between a successful :meth:`connect` and the end of the session."""
        return self._joined and not self._closed and not self._lost

    @property
    def single_pc(self) -> bool:
        """True when the server took the ``/rtc/v1`` join."""
        return self._single_pc

    @property
    def media_pid(self) -> int | None:
        """The media process's pid (for tests and diagnostics)."""
        return self._process.pid if self._process is not None else None

    # -- commands ------------------------------------------------------------------

    async def call(self, command: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run the engine command ``command`` in the media process; its result or exception."""
        process = self._process
        if process is None or self.engine_id == 0:
            raise EngineError("the room is not connected")
        return await process.call(self.engine_id, command, args, kwargs)

    async def connect(self, parameters: JoinParameters) -> signal_pb.JoinResponse:
        """Join the room from the media process (starting it if needed). Raises EngineError."""
        process = await self._loop.run_in_executor(None, MediaProcess.shared)
        self._process = process
        self.engine_id = process.register(self)
        try:
            join, single_pc = await self.call("connect", parameters)
        except BaseException:
            self._closed = True
            process.unregister(self.engine_id)
            raise
        self.join, self._single_pc, self._joined = join, single_pc, True
        self.spawn(self._report_wanted())
        return join  # type: ignore[no-any-return]

    def spawn(self, request: Coroutine[Any, Any, object]) -> None:
        """Run ``request`` as a task this session owns (cancelled when it closes; EngineError logged)."""
        if self._closed:
            request.close()
            return

        spawn_owned(self._loop, self._tasks, request, "engine request")

    async def update_subscription(self, track_sid: str, subscribe: bool) -> None:
        """Subscribe to or unsubscribe from a remote track."""
        await self.call("update_subscription", track_sid, subscribe)

    async def update_track_settings(self, track_sid: str, quality: int) -> None:
        """Ask for a simulcast layer of a remote track."""
        await self.call("update_track_settings", track_sid, quality)

    async def mute_track(self, track_sid: str, muted: bool) -> None:
        """Tell the server a local track is (un)muted."""
        await self.call("mute_track", track_sid, muted)

    async def stop_remote_video(self, track_sid: str) -> None:
        """Stop decoding ``track_sid`` right away."""
        await self.call("stop_remote_video", track_sid)

    async def publish_data(self, packet: models.DataPacket, reliable: bool, timeout: float = 10.0) -> None:
        """Send a DataPacket on the reliable or lossy data channel (see RtcEngine.publish_data)."""
        await self.call("publish_data", packet, reliable, timeout)

    async def update_metadata(
        self,
        *,
        metadata: str | None = None,
        name: str | None = None,
        attributes: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> signal_pb.RequestResponse:
        """Ask the server to change our metadata, name or attributes (see RtcEngine.update_metadata)."""
        answer: signal_pb.RequestResponse = await self.call(
            "update_metadata", metadata=metadata, name=name, attributes=attributes, timeout=timeout
        )
        return answer

    async def set_subscription_permissions(self, permission: signal_pb.SubscriptionPermission) -> None:
        """Who may subscribe to our tracks (see RtcEngine.set_subscription_permissions)."""
        await self.call("set_subscription_permissions", permission)

    async def set_e2ee_key(self, identity: str | None, key_index: int, keys: KeySet) -> None:
        """Set an E2EE key slot (see RtcEngine.set_e2ee_key)."""
        await self.call("set_e2ee_key", identity, key_index, keys)

    async def set_e2ee_enabled(self, enabled: bool) -> None:
        """Turn E2EE on or off (see RtcEngine.set_e2ee_enabled)."""
        await self.call("set_e2ee_enabled", enabled)

    async def update_frame_cryptor(self, track_sid: str, enabled: bool | None, key_index: int | None) -> None:
        """Change one track's frame cryptor (see RtcEngine.update_frame_cryptor)."""
        await self.call("update_frame_cryptor", track_sid, enabled, key_index)

    async def get_stats(self) -> EngineStats:
        """A snapshot of the media process's PeerConnection and pipeline counters."""
        stats: EngineStats = await self.call("get_stats")
        return stats

    async def publish_video(self, **options: Any) -> RemotePublished:
        """Announce, negotiate and start encoding a video track in the media process."""
        info: models.TrackInfo = await self.call("publish_video", **options)
        assert self._process is not None
        pipeline = RemotePublishPipeline(self, self._process, info.sid)
        self._published[info.sid] = pipeline
        return RemotePublished(info, pipeline)

    async def publish_audio(self, **options: Any) -> RemotePublished:
        """Announce, negotiate and start encoding an Opus track in the media process."""
        info: models.TrackInfo = await self.call("publish_audio", **options)
        assert self._process is not None
        pipeline = RemoteAudioPublishPipeline(self, self._process, info.sid)
        self._published[info.sid] = pipeline
        return RemotePublished(info, pipeline)

    async def unpublish_video(self, track_sid: str, timeout: float = 10.0) -> None:
        """Stop sending a published video track and renegotiate without it."""
        await self._unpublish("unpublish_video", track_sid, timeout)

    async def unpublish_audio(self, track_sid: str, timeout: float = 10.0) -> None:
        """Stop sending a published audio track and renegotiate without it."""
        await self._unpublish("unpublish_audio", track_sid, timeout)

    async def _unpublish(self, command: str, track_sid: str, timeout: float) -> None:
        pipeline = self._published.get(track_sid)
        if pipeline is not None:
            kind = "unpublish_audio" if isinstance(pipeline, RemoteAudioPublishPipeline) else "unpublish_video"
            if kind != command:
                return  # a track of the other kind: nothing of this kind to stop
            del self._published[track_sid]
            pipeline.close()
        # (a sid unknown here is still asked about: the child's command is a no-op for it)
        if not self._closed:
            await self.call(command, track_sid, timeout)

    # -- received media ----------------------------------------------------------------

    def route_remote_video(self, track_sid: str, consumer: FrameConsumer) -> bool:
        """Send the decoded frames of ``track_sid`` to ``consumer``; False if it is not received."""
        if track_sid not in self._remote_tracks or track_sid in self._audio_tracks:
            return False
        self._consumers[track_sid] = consumer
        self._watch(track_sid, consumer)
        return True

    def route_remote_audio(self, track_sid: str, consumer: AudioConsumer) -> bool:
        """Send the decoded PCM of ``track_sid`` to ``consumer``; False if it is not received."""
        if track_sid not in self._audio_tracks:
            return False
        self._audio_consumers[track_sid] = consumer
        self._watch(track_sid, consumer)
        return True

    def _watch(self, track_sid: str, consumer: FrameConsumer | AudioConsumer) -> None:
        if hasattr(consumer, "sinks_watcher"):
            # a stream attaching must not wait for the next poll to get decoded media
            setattr(consumer, "sinks_watcher", lambda _: self._tell_wanted(track_sid))  # noqa: B010
        self._tell_wanted(track_sid)

    def remote_pipeline(self, track_sid: str) -> ReceiveCounters | None:
        """The decode counters of a received video track, if it is received."""
        if track_sid not in self._remote_tracks or track_sid in self._audio_tracks:
            return None
        return self._counters.get(track_sid, ReceiveCounters())

    def remote_audio_pipeline(self, track_sid: str) -> AudioReceiveCounters | None:
        """The jitter buffer and decoder counters of a received audio track, if it is received."""
        if track_sid not in self._audio_tracks:
            return None
        return self._audio_counters.get(track_sid, AudioReceiveCounters())

    def _tell_wanted(self, track_sid: str) -> None:
        # the decoder skips copying media out while no stream wants it, as in-process
        consumer: FrameConsumer | AudioConsumer | None = self._consumers.get(track_sid)
        if consumer is None:
            consumer = self._audio_consumers.get(track_sid)
        wanted = consumer is not None and consumer.has_sinks
        if self._wanted.get(track_sid, True) != wanted and self._process is not None and not self._closed:
            self._wanted[track_sid] = wanted
            self._process.post(("wanted", self.engine_id, track_sid, wanted))

    async def _report_wanted(self) -> None:
        # consumers that cannot tell when their sinks change (and tracks never routed) are polled
        while not self._closed:
            for track_sid in list(self._remote_tracks):
                self._tell_wanted(track_sid)
            await asyncio.sleep(_WANTED_POLL_INTERVAL)

    # -- from the reader thread ----------------------------------------------------------

    # Events take two hops onto the loop, a command's result one: a result wakes its
    # awaiting task with one more call_soon, so the task resumes before the events the
    # child sent after that result are handled, as it would in-process. Decoded frames
    # take none: they go to the track's fanout (thread-safe) on the reader thread, so a
    # stream queues the newest frame while the application's loop is busy (a consumer
    # holding the GIL finds it when it comes back, instead of a frame that waited).

    def deliver(self, message: tuple[Any, ...]) -> None:
        """An event or counter update from the child (reader thread)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: the application is gone
            self._loop.call_soon_threadsafe(self._loop.call_soon, self._on_message, message)

    def deliver_frame(self, track_sid: str, frame: VideoFrame, info: FrameInfo) -> None:
        """A decoded frame from the child (reader thread): straight to the track's consumer."""
        with contextlib.suppress(RuntimeError):  # the application's loop is closed
            self._push(track_sid, frame, info)

    def process_died(self, detail: str) -> None:
        """The media process ended (reader thread)."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._on_process_died, detail)

    def _push(self, track_sid: str, frame: VideoFrame, info: FrameInfo) -> None:
        if self._closed:
            return
        if info.extra:
            self._counters[track_sid] = ReceiveCounters(*info.extra)
        consumer = self._consumers.get(track_sid)
        if consumer is not None:
            consumer.push(frame, info.timestamp_us, info.rotation, info.metadata)

    # -- on the loop ----------------------------------------------------------------

    def _push_audio(self, track_sid: str, audio: tuple[Any, ...], counters: tuple[int, ...]) -> None:
        if self._closed or track_sid not in self._audio_tracks:
            return
        self._audio_counters[track_sid] = AudioReceiveCounters(*counters)
        consumer = self._audio_consumers.get(track_sid)
        if consumer is not None:
            consumer.push_audio(*audio)

    def _on_message(self, message: tuple[Any, ...]) -> None:
        if message[0] == "sent":
            pipeline = self._published.get(message[2])
            if pipeline is not None:
                pipeline.bytes_sent = message[3]
            return
        if message[0] == "audio":
            self._push_audio(message[2], message[3], message[4])
            return
        _, _, name, args = message
        if self._closed and name != "on_disconnected":
            return
        if name in ("on_remote_video", "on_remote_audio"):
            self._remote_tracks.add(args[0])
            if name == "on_remote_audio":
                self._audio_tracks.add(args[0])
        elif name in ("on_remote_video_ended", "on_remote_audio_ended"):
            self._forget_track(args[0])
        elif name == "on_connection_lost":
            self._lost = True
        elif name == "on_disconnected":
            if self._disconnect_reported:
                return
            self._disconnect_reported = True
            self._closed = True
        getattr(self._listener, name)(*args)

    def _forget_track(self, track_sid: str) -> None:
        self._remote_tracks.discard(track_sid)
        self._consumers.pop(track_sid, None)
        self._audio_tracks.discard(track_sid)
        self._audio_consumers.pop(track_sid, None)
        self._wanted.pop(track_sid, None)
        self._counters.pop(track_sid, None)
        self._audio_counters.pop(track_sid, None)

    def _on_process_died(self, detail: str) -> None:
        if self._closed:
            return
        logger.warning("%s; the room reconnects with a new one", detail)
        self._release_media()
        if self._joined and not self._lost:
            self._lost = True
            self._listener.on_connection_lost(int(models.DisconnectReason.MEDIA_FAILURE))

    # -- leaving -------------------------------------------------------------------

    async def disconnect(self, reason: int = models.DisconnectReason.CLIENT_INITIATED) -> None:
        """Leave the room and close everything. Idempotent."""
        await self._end(reason, "disconnect", reason)

    async def abandon(self) -> None:
        """Close everything of this session without telling the server or the listener."""
        await self._end(None, "abandon")

    async def _end(self, reason: int | None, command: str, *args: Any) -> None:
        if self._process is not None and self.engine_id and not self._process.dead and not self._closed:
            with contextlib.suppress(EngineError):
                await self.call(command, *args)
        self._closed = True
        self._release_media()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        if self._process is not None and self.engine_id:
            self._process.unregister(self.engine_id)
        if reason is not None and not self._disconnect_reported:
            self._disconnect_reported = True
            self._listener.on_disconnected(reason)

    def _release_media(self) -> None:
        for pipeline in self._published.values():
            pipeline.close()
        self._published.clear()
        for track_sid in list(self._remote_tracks):
            self._forget_track(track_sid)
