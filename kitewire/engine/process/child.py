"""The media process: RtcEngines on an event loop of their own, driven over the control channel.

Started by :mod:`kitewire.engine.process.supervisor` as
``python -m kitewire.engine.process.child <socket fd> <parent pid>``. It dies with the
application (PR_SET_PDEATHSIG, and EOF on the socket), hosts one RtcEngine per
application-side :class:`~kitewire.engine.process.RemoteEngine`, runs their commands
by name (``("call", engine_id, call_id, method, args, kwargs)`` answered by
``("result", call_id, value)`` or ``("error", call_id, exception)``) and forwards
every listener event by name (``("event", engine_id, method, args)``).

Frames: a published track's frames arrive as ``frame`` messages and go to its encode
pipeline as views of the shared slot; a received track's decoded frames go out
through a :class:`~kitewire.engine.process.frame_link.FrameWriter` of its own. Each
frame's metadata travels in its FrameInfo. Audio is small (20 ms of PCM is a few KB):
it crosses as plain bytes in the message itself, ``("audio", key, pcm, sample_rate,
num_channels, samples, timestamp_us)`` as it is captured, to a published track's
playout queue here (paced without the application's GIL, then to its encoder;
``("audio_clear", key)`` empties the queue), and
``("audio", engine_id, track_sid, (pcm, ...), counters)`` from a received track's decoder.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import inspect
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from livekit.protocol import models

from kitewire.engine.session import EngineListener, JoinParameters, RtcEngine
from kitewire.engine.wire import EngineError
from kitewire.frames import VideoFrame
from kitewire.frames.audio_playout import AudioPlayout
from kitewire.media.packet_trailer import FrameMetadata

from .channel import Channel, Message
from .frame_link import RECEIVE_SLOTS, FrameInfo, FrameLink, FrameWriter

logger = logging.getLogger("kitewire.engine.process")

_PR_SET_PDEATHSIG = 1
# a published track's audio waiting here for playout: the application's AudioSource keeps
# it within its queue_size_ms (at most 60 s); beyond this the oldest is dropped
_MAX_PLAYOUT_SECONDS = 61
# how often a published track's bytes sent reach the application (publication.bytes_sent)
_SENT_REPORT_INTERVAL = 0.05


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when the application dies, however it dies."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # the parent may have died before prctl took effect
    if os.getppid() != parent_pid:
        os._exit(0)


class _ForwardedTrack:
    """A received track's FrameConsumer in the media process: frames go to the application."""

    def __init__(self, hosted: _HostedEngine, track_sid: str, writer: FrameWriter) -> None:
        self._hosted = hosted
        self._track_sid = track_sid
        self.writer = writer
        # the application tells us when no stream wants frames (then decoding skips copies)
        self.wanted = True
        # looked up on the loop once: push runs on the decoding thread, which must not
        # walk the engine's tracks while the loop changes them
        self.pipeline = hosted.engine.remote_pipeline(track_sid)

    @property
    def has_sinks(self) -> bool:
        return self.wanted

    #: push may run on the decoding thread: it only fills a message for the channel
    thread_safe_push = True

    def frame_memory(self, size: int) -> npt.NDArray[np.uint8] | None:
        """A slot for the decoder to copy its next picture into (then sending it copies nothing)."""
        return self.writer.reserve(size)

    def push(self, frame: VideoFrame, timestamp_us: int, rotation: int, metadata: FrameMetadata | None = None) -> None:
        pipeline = self.pipeline
        counters = (
            (pipeline.frames_decoded, pipeline.nacks_sent, pipeline.keyframe_requests_sent) if pipeline else (0, 0, 0)
        )
        info = FrameInfo(frame.width, frame.height, frame.type, timestamp_us, rotation, counters, metadata)
        # inline when every slot is held: the application keeps frames (a capacity-0 stream)
        self.writer.send((self._hosted.engine_id, self._track_sid), frame, info, inline_when_full=True)

    def close(self) -> None:
        self.writer.close()


class _ForwardedAudio:
    """A received audio track's AudioConsumer in the media process: PCM goes to the application."""

    def __init__(self, hosted: _HostedEngine, track_sid: str) -> None:
        self._hosted = hosted
        self._track_sid = track_sid
        self.wanted = True

    @property
    def has_sinks(self) -> bool:
        return self.wanted

    def push_audio(self, pcm: bytes, sample_rate: int, num_channels: int, samples: int, timestamp_us: int) -> None:
        pipeline = self._hosted.engine.remote_audio_pipeline(self._track_sid)
        counters = (
            (pipeline.packets_lost, pipeline.frames_concealed, pipeline.frames_recovered) if pipeline else (0, 0, 0)
        )
        message = (sample_rate, num_channels, samples, timestamp_us)
        self._hosted._host.channel.post(
            ("audio", self._hosted.engine_id, self._track_sid, (bytes(pcm), *message), counters)
        )

    def close(self) -> None:
        pass


class _HostedEngine:
    """One RtcEngine in the media process and its listener, forwarding events by name."""

    def __init__(self, engine_id: int, host: EngineHost) -> None:
        self.engine_id = engine_id
        self._host = host
        self._published: dict[str, Any] = {}
        self._tracks: dict[str, _ForwardedTrack | _ForwardedAudio] = {}
        self._sent_reported: dict[str, int] = {}
        self._sent_report_due: set[str] = set()
        # published audio tracks' playout queues: captured PCM arrives at once, paced here
        self._playouts: dict[str, tuple[tuple[int, int], AudioPlayout]] = {}
        self.engine = RtcEngine(self._listener())

    def _listener(self) -> EngineListener:
        hosted = self

        class Forwarding:
            def __getattr__(self, name: str) -> Callable[..., None]:
                if not name.startswith("on_"):
                    raise AttributeError(name)
                special = getattr(hosted, f"_before_{name}", None)

                def forward(*args: Any) -> None:
                    if special is not None:
                        special(*args)
                    hosted._host.channel.post(("event", hosted.engine_id, name, args))

                return forward

        return Forwarding()

    # -- events that need work here before they are forwarded ---------------------

    def _before_on_remote_video(self, track_sid: str, participant_sid: str) -> None:
        self._forget_track(track_sid)
        track = _ForwardedTrack(self, track_sid, self._host.link.writer(RECEIVE_SLOTS))
        self._tracks[track_sid] = track
        self.engine.route_remote_video(track_sid, track)

    def _before_on_remote_audio(self, track_sid: str, participant_sid: str) -> None:
        self._forget_track(track_sid)
        track = _ForwardedAudio(self, track_sid)
        self._tracks[track_sid] = track
        self.engine.route_remote_audio(track_sid, track)

    def _before_on_remote_video_ended(self, track_sid: str) -> None:
        self._forget_track(track_sid)

    def _before_on_remote_audio_ended(self, track_sid: str) -> None:
        self._forget_track(track_sid)

    def _forget_track(self, track_sid: str) -> None:
        track = self._tracks.pop(track_sid, None)
        if track is not None:
            track.close()

    # -- commands that differ from RtcEngine's ---------------------------------------

    async def connect(self, parameters: JoinParameters) -> tuple[Any, bool]:
        join = await self.engine.connect(parameters)
        return join, self.engine.single_pc

    async def publish_video(self, **options: Any) -> models.TrackInfo:
        published = await self.engine.publish_video(**options)
        self._published[published.info.sid] = published.pipeline
        return published.info

    async def unpublish_video(self, track_sid: str, timeout: float = 10.0) -> None:
        self._published.pop(track_sid, None)
        await self.engine.unpublish_video(track_sid, timeout)

    async def publish_audio(self, **options: Any) -> models.TrackInfo:
        published = await self.engine.publish_audio(**options)
        self._published[published.info.sid] = published.pipeline
        return published.info

    async def unpublish_audio(self, track_sid: str, timeout: float = 10.0) -> None:
        self._published.pop(track_sid, None)
        self._sent_reported.pop(track_sid, None)
        self._drop_playout(track_sid)
        await self.engine.unpublish_audio(track_sid, timeout)

    async def set_publish_muted(self, track_sid: str, muted: bool) -> None:
        pipeline = self._published.get(track_sid)
        if pipeline is not None:
            pipeline.muted = muted

    async def end_publish_input(self, track_sid: str) -> None:
        self._drop_playout(track_sid)  # a closed source's queued audio is dropped
        pipeline = self._published.get(track_sid)
        if pipeline is not None:
            pipeline.on_end()

    def set_wanted(self, track_sid: str, wanted: bool) -> None:
        track = self._tracks.get(track_sid)
        if track is not None:
            track.wanted = wanted

    def on_published_frame(self, track_sid: str, frame: VideoFrame | None, info: FrameInfo) -> None:
        pipeline = self._published.get(track_sid)
        if pipeline is None or frame is None:
            return
        pipeline.on_frame(frame, info.timestamp_us, info.rotation, info.metadata)
        self._report_sent_soon(track_sid)

    def on_published_audio(
        self, track_sid: str, pcm: bytes, sample_rate: int, num_channels: int, samples: int, timestamp_us: int
    ) -> None:
        """Captured PCM of a published track: queued for playout here, in real time."""
        if track_sid not in self._published:
            return
        current = self._playouts.get(track_sid)
        if current is None or current[0] != (sample_rate, num_channels):
            self._drop_playout(track_sid)

            def emit(chunk: bytes, chunk_samples: int, chunk_timestamp_us: int) -> None:
                self._play(track_sid, chunk, sample_rate, num_channels, chunk_samples, chunk_timestamp_us)

            playout = AudioPlayout(sample_rate, num_channels, sample_rate * _MAX_PLAYOUT_SECONDS, emit)
            current = self._playouts[track_sid] = ((sample_rate, num_channels), playout)
        current[1].push(pcm)

    def clear_published_audio(self, track_sid: str) -> None:
        current = self._playouts.get(track_sid)
        if current is not None:
            current[1].clear()

    def _drop_playout(self, track_sid: str) -> None:
        current = self._playouts.pop(track_sid, None)
        if current is not None:
            current[1].clear()
            task = asyncio.get_running_loop().create_task(current[1].aclose())
            self._host.keep(task)

    def _play(self, track_sid: str, pcm: bytes, *audio_format: int) -> None:
        pipeline = self._published.get(track_sid)
        if pipeline is None:
            return
        pipeline.on_audio(pcm, *audio_format)
        self._report_sent_soon(track_sid)

    def _report_sent_soon(self, track_sid: str) -> None:
        """Tell the application a published track's bytes sent, at most every
        :data:`_SENT_REPORT_INTERVAL`: a message per frame would cost each frame a
        wake-up of the application's reader, before its encode starts."""
        if track_sid in self._sent_report_due:
            return
        self._sent_report_due.add(track_sid)
        asyncio.get_running_loop().call_later(_SENT_REPORT_INTERVAL, self._report_sent, track_sid)

    def _report_sent(self, track_sid: str) -> None:
        self._sent_report_due.discard(track_sid)
        pipeline = self._published.get(track_sid)
        if pipeline is None:
            return
        sent = pipeline.bytes_sent
        if self._sent_reported.get(track_sid) != sent:
            self._sent_reported[track_sid] = sent
            self._host.channel.post(("sent", self.engine_id, track_sid, sent))
            # the encoder runs behind the last frame: look again until nothing changes
            self._report_sent_soon(track_sid)

    def close(self) -> None:
        for track in self._tracks.values():
            track.close()
        self._tracks.clear()
        for track_sid in list(self._playouts):
            self._drop_playout(track_sid)
        self._published.clear()


class EngineHost:
    """Every engine of the media process, driven by the application's messages."""

    def __init__(self, channel: Channel, loop: asyncio.AbstractEventLoop) -> None:
        self.channel = channel
        self.link = FrameLink(channel)
        self._loop = loop
        self._engines: dict[int, _HostedEngine] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def on_message(self, message: Message) -> None:
        """One message from the application, on the loop (which reads the socket), in order."""
        kind = message[0]
        if kind == "frame":
            key, place, info = message[1], message[2], message[3]
            self._published_frame(key, self.link.read(place, info), info)
        elif kind == "audio":
            self._published_audio(message[1], message[2:])
        elif kind == "audio_clear":
            self._published_audio_cleared(message[1])
        elif not self.link.handle(message):
            self._handle(message)

    def _published_frame(self, key: tuple[int, str], frame: VideoFrame | None, info: FrameInfo) -> None:
        hosted = self._engines.get(key[0])
        if hosted is not None:
            hosted.on_published_frame(key[1], frame, info)

    def _published_audio(self, key: tuple[int, str], audio: tuple[Any, ...]) -> None:
        hosted = self._engines.get(key[0])
        if hosted is not None:
            hosted.on_published_audio(key[1], *audio)

    def _published_audio_cleared(self, key: tuple[int, str]) -> None:
        hosted = self._engines.get(key[0])
        if hosted is not None:
            hosted.clear_published_audio(key[1])

    def keep(self, task: asyncio.Task[None]) -> None:
        """Keep ``task`` referenced until it ends."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _handle(self, message: Message) -> None:
        kind = message[0]
        if kind == "open":
            self._engines[message[1]] = _HostedEngine(message[1], self)
        elif kind == "call":
            _, engine_id, call_id, name, args, kwargs = message
            task = self._loop.create_task(self._call(engine_id, call_id, name, args, kwargs))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "wanted":
            hosted = self._engines.get(message[1])
            if hosted is not None:
                hosted.set_wanted(message[2], message[3])
        elif kind == "close":
            closed = self._engines.pop(message[1], None)
            if closed is not None:
                closed.close()
                # a session given up half-way (a connect the application cancelled) must
                # not stay in its room: abandoning an ended session does nothing
                task = self._loop.create_task(closed.engine.abandon())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        else:
            logger.warning("media process: unknown message %r", kind)

    async def _call(
        self, engine_id: int, call_id: int, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        hosted = self._engines.get(engine_id)
        try:
            if hosted is None:
                raise EngineError("the engine session is closed")
            method = getattr(hosted, name, None) or getattr(hosted.engine, name)
            result = method(*args, **kwargs)
            if inspect.isawaitable(result):  # commands are coroutines; entry points may be plain
                result = await result
        except Exception as exc:
            self.channel.post(("error", call_id, _picklable(exc)))
            return
        try:
            self.channel.send(("result", call_id, result))
        except Exception as exc:  # a result that cannot cross is a bug: say so to the caller
            self.channel.post(("error", call_id, EngineError(f"{name} returned what cannot cross processes: {exc}")))

    async def close(self) -> None:
        """The application is gone: leave every room and stop."""
        for hosted in list(self._engines.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(hosted.engine.disconnect(), 5)
            hosted.close()
        self._engines.clear()
        self.link.close()


def _picklable(exc: Exception) -> Exception:
    if isinstance(exc, (EngineError, ValueError, TypeError, RuntimeError)) and len(exc.args) <= 1:
        return exc
    return EngineError(f"{type(exc).__name__}: {exc}")


async def _serve(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    channel = Channel(sock)
    host = EngineHost(channel, loop)
    ended = asyncio.Event()

    def on_closed() -> None:
        ended.set()

    channel.start_loop_reader(loop, host.on_message, on_closed)
    channel.send(("ready", os.getpid()))
    await ended.wait()
    await host.close()


def main(argv: list[str]) -> int:
    """Entry point: ``child.py <socket fd> <parent pid>``."""
    fd, parent_pid = int(argv[1]), int(argv[2])
    _die_with_parent(parent_pid)
    logging.basicConfig(level=os.environ.get("KITEWIRE_MEDIA_LOG", "WARNING"))
    sock = socket.socket(fileno=fd)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(sock))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
