"""What the rtc layer may use of an engine session, wherever that session runs.

:class:`kitewire.engine.session.RtcEngine` (in the application's process) and
:class:`kitewire.engine.process.RemoteEngine` (a proxy for an RtcEngine in the media
process) both satisfy :class:`EngineHandle`; ``kitewire.rtc`` and
:class:`~kitewire.engine.reconnect.ReconnectingEngine` are written against it only.

The types both sides share live here too (the listener protocols, JoinParameters,
EngineError), so that the application's side of a media process imports nothing heavy.

A new engine command is an ``async`` method of RtcEngine with picklable arguments and
result; add it here and as a one-line forwarding method on RemoteEngine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from livekit.protocol import models
from livekit.protocol import rtc as signal_pb

from kitewire.media.e2ee_frame import KeySet
from kitewire.media.packet_trailer import FrameMetadata

if TYPE_CHECKING:
    from kitewire.frames import VideoFrame

    from .e2ee import E2eeConfig
    from .stats import EngineStats

__all__ = [
    "AudioConsumer",
    "AudioReceiveCounters",
    "EngineError",
    "EngineEvents",
    "EngineFactory",
    "EngineHandle",
    "EngineListener",
    "FrameConsumer",
    "JoinParameters",
    "PublishHandle",
    "PublishSink",
    "ReceiveCounters",
    "spawn_owned",
]

logger = logging.getLogger("kitewire.engine")


class EngineError(Exception):
    """A request to the server failed (not connected, refused, or timed out)."""


def spawn_owned(
    loop: asyncio.AbstractEventLoop,
    tasks: set[asyncio.Task[Any]],
    coroutine: Coroutine[Any, Any, object],
    what: str,
) -> None:
    """Run ``coroutine`` as a task kept in ``tasks`` (so its owner can cancel it) until it ends.

    An ``EngineError`` is logged as a warning, anything else with its traceback as ``what``
    failing. A task cancelled before its first step never awaited ``coroutine``: it is
    closed quietly.
    """

    async def run() -> None:
        try:
            await coroutine
        except EngineError as exc:
            logger.warning("%s", exc)
        except Exception:
            logger.exception("%s failed", what)

    task = loop.create_task(run())
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    task.add_done_callback(lambda _: coroutine.close())


class EngineEvents(Protocol):
    """What a session reports about the room (all called on the event loop)."""

    def on_participant_update(self, participants: list[models.ParticipantInfo]) -> None:
        """The server's ParticipantUpdate: participants that joined, changed or left."""

    def on_remote_video(self, track_sid: str, participant_sid: str) -> None:
        """Media of a subscribed video track started arriving: :meth:`RtcEngine.route_remote_video`
        says where its decoded frames go."""

    def on_remote_video_ended(self, track_sid: str) -> None:
        """``track_sid`` is no longer received (unsubscribed, unpublished or renegotiated away)."""

    def on_remote_audio(self, track_sid: str, participant_sid: str) -> None:
        """Media of a subscribed audio track started arriving: :meth:`RtcEngine.route_remote_audio`
        says where its decoded PCM goes."""

    def on_remote_audio_ended(self, track_sid: str) -> None:
        """The audio track ``track_sid`` is no longer received."""

    def on_local_track_unpublished(self, track_sid: str) -> None:
        """The server unpublished one of our tracks."""

    def on_local_track_subscribed(self, track_sid: str) -> None:
        """Another participant subscribed to one of our tracks."""

    def on_track_mute_requested(self, track_sid: str, muted: bool) -> None:
        """The server asks us to (un)mute one of our tracks."""

    def on_room_update(self, room: models.Room) -> None:
        """Room metadata or counters changed."""

    def on_e2ee_state(self, participant_identity: str, state: int) -> None:
        """A frame cryptor's EncryptionState changed (livekit's e2ee_state_changed)."""

    def on_data_packet(self, packet: models.DataPacket, reliable: bool) -> None:
        """A DataPacket from another participant or the server (user data, RPC, streams, ...)."""

    def on_speakers_changed(self, speakers: list[models.SpeakerInfo]) -> None:
        """The server's SpeakersChanged: participants whose speaking state or level changed."""

    def on_connection_quality(self, updates: list[signal_pb.ConnectionQualityInfo]) -> None:
        """The server's ConnectionQualityUpdate."""

    def on_disconnected(self, reason: int) -> None:
        """The session ended; ``reason`` is a DisconnectReason."""


class EngineListener(EngineEvents, Protocol):
    """What the session reports to its owner: the room's events and the loss of the connection."""

    def on_connection_lost(self, reason: int) -> None:
        """The signal connection dropped or a PeerConnection failed, and the server
        did not forbid coming back: the session is unusable but NOT torn down; the
        listener decides whether to rejoin (then :meth:`RtcEngine.abandon` this one)
        or to give up (:meth:`RtcEngine.disconnect`)."""


class FrameConsumer(Protocol):
    """Where a remote track's decoded frames go (the rtc layer's frame fanout).

    A consumer may also have ``frame_memory(nbytes)``, giving the memory (a flat uint8
    array) the decoder copies its next picture into, or None: the media process's
    forwarding consumer gives shared-memory slots that way; and ``thread_safe_push =
    True``, which lets the decoding thread push a frame to be shown at once itself.
    """

    @property
    def has_sinks(self) -> bool:
        """Whether anyone wants frames now: while not, the decoder skips work."""

    def push(self, frame: VideoFrame, timestamp_us: int, rotation: int, metadata: FrameMetadata | None = None) -> None:
        """One decoded frame with its sender's metadata (if any): on the event loop in-process,
        on the media channel's reader thread from a media process (so it must be thread-safe)."""


class AudioConsumer(Protocol):
    """Where a remote audio track's decoded PCM goes (plain bytes and ints: it may cross a pipe)."""

    @property
    def has_sinks(self) -> bool:
        """Whether anyone wants audio now."""

    def push_audio(self, pcm: bytes, sample_rate: int, num_channels: int, samples: int, timestamp_us: int) -> None:
        """``samples`` per channel of int16 interleaved PCM, on the event loop."""


@dataclass(frozen=True)
class JoinParameters:
    """How to join a room: for :meth:`RtcEngine.connect`, and kept by
    :class:`~kitewire.engine.reconnect.ReconnectingEngine` for its rejoins."""

    url: str
    token: str
    auto_subscribe: bool = True
    timeout: float = 5.0
    # livekit's RoomOptions name: False joins over legacy /rtc with two PeerConnections
    single_peer_connection: bool | None = None
    # end-to-end encryption (None: frames go as they are)
    e2ee: E2eeConfig | None = None


class PublishSink(Protocol):
    """The frame sink of one published track, video or audio (its encode pipeline, or a proxy of it)."""

    @property
    def muted(self) -> bool:
        """While muted, captured frames are dropped."""

    @muted.setter
    def muted(self, value: bool) -> None: ...

    @property
    def bytes_sent(self) -> int:
        """Payload bytes sent over all layers."""

    def on_frame(self, frame: Any, timestamp_us: int, rotation: int, metadata: FrameMetadata | None = None) -> None:
        """Offer a captured frame with its metadata (a VideoFrame from any thread; an AudioFrame on the loop)."""

    def on_end(self) -> None:
        """The source closed."""


class PublishHandle(Protocol):
    """What publishing a track gives back."""

    @property
    def info(self) -> models.TrackInfo:
        """The server's TrackInfo of the new track."""

    @property
    def pipeline(self) -> PublishSink:
        """Where the track's frames go."""


class ReceiveCounters(Protocol):
    """Counters of one received track's decode pipeline."""

    @property
    def frames_decoded(self) -> int: ...

    @property
    def nacks_sent(self) -> int: ...

    @property
    def keyframe_requests_sent(self) -> int: ...


class AudioReceiveCounters(Protocol):
    """Counters of one received audio track's jitter buffer and decoder."""

    @property
    def packets_lost(self) -> int: ...

    @property
    def frames_concealed(self) -> int: ...

    @property
    def frames_recovered(self) -> int: ...


class EngineHandle(Protocol):
    """One engine session as the rtc layer uses it (see the module docstring)."""

    join: signal_pb.JoinResponse | None

    @property
    def connected(self) -> bool: ...

    @property
    def single_pc(self) -> bool: ...

    async def connect(self, parameters: JoinParameters) -> signal_pb.JoinResponse: ...

    def spawn(self, request: Coroutine[Any, Any, object]) -> None: ...

    async def update_subscription(self, track_sid: str, subscribe: bool) -> None: ...

    async def update_track_settings(self, track_sid: str, quality: int) -> None: ...

    async def mute_track(self, track_sid: str, muted: bool) -> None: ...

    async def stop_remote_video(self, track_sid: str) -> None: ...

    def route_remote_video(self, track_sid: str, consumer: FrameConsumer) -> bool: ...

    def remote_pipeline(self, track_sid: str) -> ReceiveCounters | None: ...

    def route_remote_audio(self, track_sid: str, consumer: AudioConsumer) -> bool: ...

    def remote_audio_pipeline(self, track_sid: str) -> AudioReceiveCounters | None: ...

    async def publish_data(self, packet: models.DataPacket, reliable: bool, timeout: float = 10.0) -> None: ...

    async def update_metadata(
        self,
        *,
        metadata: str | None = None,
        name: str | None = None,
        attributes: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> signal_pb.RequestResponse: ...

    async def get_stats(self) -> EngineStats: ...

    async def set_subscription_permissions(self, permission: signal_pb.SubscriptionPermission) -> None: ...

    async def set_e2ee_key(self, identity: str | None, key_index: int, keys: KeySet) -> None: ...

    async def set_e2ee_enabled(self, enabled: bool) -> None: ...

    async def update_frame_cryptor(self, track_sid: str, enabled: bool | None, key_index: int | None) -> None: ...

    async def publish_video(
        self,
        *,
        cid: str,
        name: str,
        source: int,
        width: int,
        height: int,
        codec: str,
        simulcast: bool,
        max_bitrate: int,
        max_framerate: float,
        frame_metadata_features: tuple[int, ...] = (),
        timeout: float = 10.0,
    ) -> PublishHandle: ...

    async def unpublish_video(self, track_sid: str, timeout: float = 10.0) -> None: ...

    async def publish_audio(
        self,
        *,
        cid: str,
        name: str,
        source: int,
        num_channels: int,
        dtx: bool = True,
        bitrate: int = 0,
        timeout: float = 10.0,
    ) -> PublishHandle: ...

    async def unpublish_audio(self, track_sid: str, timeout: float = 10.0) -> None: ...

    async def disconnect(self, reason: int = models.DisconnectReason.CLIENT_INITIATED) -> None: ...

    async def abandon(self) -> None: ...


EngineFactory = Callable[["EngineListener"], EngineHandle]
"""Makes a session for an ``EngineListener`` (the ReconnectingEngine's per-join factory)."""
