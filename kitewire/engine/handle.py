"""What the rtc layer may use of an engine session, wherever that session runs.

:class:`kitewire.engine.session.RtcEngine` (in the application's process) and
:class:`kitewire.engine.process.RemoteEngine` (a proxy for an RtcEngine in the media
process) both satisfy :class:`EngineHandle`; ``kitewire.rtc`` and
:class:`~kitewire.engine.reconnect.ReconnectingEngine` are written against it only.

A new engine command is an ``async`` method of RtcEngine with picklable arguments and
result; add it here and as a one-line forwarding method on RemoteEngine.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from livekit.protocol import models
from livekit.protocol import rtc as signal_pb

from kitewire.media.e2ee_frame import KeySet
from kitewire.media.packet_trailer import FrameMetadata

if TYPE_CHECKING:
    from .session import AudioConsumer, EngineListener, FrameConsumer, JoinParameters
    from .stats import EngineStats

__all__ = [
    "AudioReceiveCounters",
    "EngineFactory",
    "EngineHandle",
    "PublishHandle",
    "PublishSink",
    "ReceiveCounters",
]


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
