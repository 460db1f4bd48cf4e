"""Options, states and errors of the public client API, named as in livekit.rtc."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from livekit.protocol.models import DisconnectReason as DisconnectReason

from kitewire.frames import TrackSource, VideoCodec
from kitewire.frames.enums import EnumTypeWrapper


class ConnectionState(EnumTypeWrapper):
    """State of a Room's connection to the server (livekit numbering)."""

    CONN_DISCONNECTED = 0
    CONN_CONNECTED = 1
    CONN_RECONNECTING = 2


class ParticipantKind(EnumTypeWrapper):
    """What kind of client a participant is (livekit numbering)."""

    PARTICIPANT_KIND_STANDARD = 0
    PARTICIPANT_KIND_INGRESS = 1
    PARTICIPANT_KIND_EGRESS = 2
    PARTICIPANT_KIND_SIP = 3
    PARTICIPANT_KIND_AGENT = 4
    PARTICIPANT_KIND_CONNECTOR = 5
    PARTICIPANT_KIND_BRIDGE = 6


class ParticipantState(EnumTypeWrapper):
    """A participant's session state (livekit numbering)."""

    PARTICIPANT_STATE_JOINING = 0
    PARTICIPANT_STATE_JOINED = 1
    PARTICIPANT_STATE_ACTIVE = 2
    PARTICIPANT_STATE_DISCONNECTED = 3


class IceTransportType(EnumTypeWrapper):
    """Which ICE candidates may be used (livekit numbering)."""

    TRANSPORT_RELAY = 0
    TRANSPORT_NOHOST = 1
    TRANSPORT_ALL = 2


class ContinualGatheringPolicy(EnumTypeWrapper):
    """ICE gathering policy (livekit numbering); kitewire gathers once."""

    GATHER_ONCE = 0
    GATHER_CONTINUALLY = 1


@dataclass
class IceServer:
    """A STUN/TURN server entry; kitewire keeps ICE on loopback and ignores these."""

    urls: list[str] = field(default_factory=list)
    username: str = ""
    password: str = ""


@dataclass
class RtcConfiguration:
    """WebRTC configuration for a Room, as in livekit.rtc."""

    ice_transport_type: int = IceTransportType.TRANSPORT_ALL
    continual_gathering_policy: int = ContinualGatheringPolicy.GATHER_CONTINUALLY
    ice_servers: list[IceServer] = field(default_factory=list)


@dataclass
class DataStreamOptions:
    """Limits for incoming data streams (accepted for compatibility; video only here)."""

    max_payload_byte_length: int | None = None


@dataclass
class RoomOptions:
    """Options for :meth:`Room.connect`, as in livekit.rtc."""

    auto_subscribe: bool = True
    """Subscribe to every published track automatically."""
    dynacast: bool = False
    """Let the server pause unused simulcast layers (accepted; kitewire always sends all)."""
    e2ee: Any | None = None
    """End-to-end encryption is not supported; must stay None."""
    encryption: Any | None = None
    """End-to-end encryption is not supported; must stay None."""
    rtc_config: RtcConfiguration | None = None
    connect_timeout: float | None = None
    """Seconds allowed for the signal connection and join; None means 5 s."""
    single_peer_connection: bool | None = None
    """None or True: join over ``/rtc/v1`` with one PeerConnection (falling back to ``/rtc`` with
    two when the server answers 404), as livekit 1.2 does; False: legacy ``/rtc`` with two."""
    data_stream: DataStreamOptions | None = None


@dataclass
class VideoEncoding:
    """Encoder limits for a published video track (livekit's field names)."""

    max_bitrate: int = 0
    """Bits per second for the top layer; 0 picks a default from the resolution."""
    max_framerate: float = 0.0
    """Frames per second; 0 means 30."""


@dataclass
class TrackPublishOptions:
    """Options for :meth:`LocalParticipant.publish_track`, as in livekit.rtc."""

    video_encoding: VideoEncoding | None = None
    video_codec: int = VideoCodec.VP8
    simulcast: bool | None = None
    """Publish several layers (q/h/f, as many as the size allows). None, the
    default, means on, as in livekit; False publishes a single layer."""
    source: int = TrackSource.SOURCE_UNKNOWN
    stream: str = ""
    dtx: bool = False
    red: bool = False
    preconnect_buffer: bool = False

    def __post_init__(self) -> None:
        if self.video_encoding is not None and not isinstance(self.video_encoding, VideoEncoding):
            raise ValueError(
                f"expected video_encoding to be a VideoEncoding or None, got {type(self.video_encoding).__name__}"
            )
        if int(self.video_codec) not in (int(VideoCodec.VP8), int(VideoCodec.H264)):
            raise ValueError(
                f"expected video_codec VideoCodec.VP8 ({int(VideoCodec.VP8)}) or VideoCodec.H264 "
                f"({int(VideoCodec.H264)}), got {self.video_codec!r}"
            )


class ConnectionQuality(enum.IntEnum):
    """Connection quality reported for a participant (livekit's values)."""

    QUALITY_UNKNOWN = -1
    QUALITY_POOR = 0
    QUALITY_GOOD = 1
    QUALITY_EXCELLENT = 2
    QUALITY_LOST = 3


class ConnectError(Exception):
    """Raised by :meth:`Room.connect` when the server cannot be joined."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PublishTrackError(Exception):
    """Raised by :meth:`LocalParticipant.publish_track` when publishing fails."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnpublishTrackError(Exception):
    """Raised by :meth:`LocalParticipant.unpublish_track` when unpublishing fails."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
