"""Options, states and errors of the public client API, named as in livekit.rtc."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any

from livekit.protocol.models import DisconnectReason as DisconnectReason

from kitewire.frames import TrackSource, VideoCodec
from kitewire.frames.enums import EnumTypeWrapper


class FrameMetadataFeature(EnumTypeWrapper):
    """Per-frame metadata a published video track carries (livekit numbering, the
    protocol's ``PacketTrailerFeature``)."""

    FMF_USER_TIMESTAMP = 0
    FMF_FRAME_ID = 1
    FMF_USER_DATA = 2


class VideoEncoderBackend(EnumTypeWrapper):
    """Which encoder implementation to use (livekit numbering); kitewire encodes in
    software (PyAV) whatever is asked."""

    ENCODER_BACKEND_AUTO = 0
    ENCODER_BACKEND_SOFTWARE = 1
    ENCODER_BACKEND_HARDWARE = 2
    ENCODER_BACKEND_NVENC = 3
    ENCODER_BACKEND_VAAPI = 4
    ENCODER_BACKEND_VIDEOTOOLBOX = 5
    ENCODER_BACKEND_PRE_ENCODED = 6


class DegradationPreference(enum.IntEnum):
    """How the encoder degrades when bandwidth is short (livekit's values).

    kitewire's loss control always trades size before frame rate (BALANCED)."""

    BALANCED = 0
    MAINTAIN_FRAMERATE = 1
    MAINTAIN_RESOLUTION = 2
    MAINTAIN_FRAMERATE_AND_RESOLUTION = 4


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
    """Deprecated name of ``encryption`` (as in livekit.rtc)."""
    encryption: Any | None = None
    """End-to-end encryption: an :class:`~kitewire.rtc.E2EEOptions`, or None for none."""
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
class AudioEncoding:
    """Encoder limits for a published audio track (livekit's field name)."""

    max_bitrate: int = 0
    """Opus bits per second, 6000 to 510000; 0 picks 32 kbps (mono) or 64 kbps (stereo)."""

    def opus_bitrate(self, num_channels: int) -> int:
        """The Opus bitrate to encode ``num_channels`` with; ValueError for one Opus cannot do."""
        bitrate = self.max_bitrate
        if (
            isinstance(bitrate, bool)
            or not isinstance(bitrate, int)
            or not (bitrate == 0 or 6_000 <= bitrate <= 510_000)
        ):
            raise ValueError(
                f"expected audio_encoding.max_bitrate 0 (the default) or 6000..510000 bps, got {bitrate!r}"
            )
        return bitrate or (64_000 if num_channels >= 2 else 32_000)


#: codecs kitewire publishes (and receives)
PUBLISHABLE_CODECS = (VideoCodec.VP8, VideoCodec.H264, VideoCodec.VP9, VideoCodec.AV1, VideoCodec.H265)
# W3C WebRTC-SVC mode names: L (or S for simulcast-like) spatial count, T temporal count,
# an optional "h" (1.5:1 spatial ratio) and _KEY / _KEY_SHIFT
_SCALABILITY_MODE = re.compile(r"[LS][1-3]T[1-3]h?(_KEY(_SHIFT)?)?")
_FEATURE_NUMBERS = frozenset(int(value) for _, value in FrameMetadataFeature.items())
_DEGRADATION_NUMBERS = frozenset(int(value) for value in DegradationPreference)
_ENCODER_NUMBERS = frozenset(int(value) for _, value in VideoEncoderBackend.items())


@dataclass
class TrackPublishOptions:
    """Options for :meth:`LocalParticipant.publish_track`, as in livekit.rtc."""

    video_encoding: VideoEncoding | None = None
    video_codec: int = VideoCodec.VP8
    """VP8, H264, VP9, AV1 or H265."""
    simulcast: bool | None = None
    """Publish several layers (q/h/f, as many as the size allows). None, the
    default, means on, as in livekit; False publishes a single layer."""
    source: int = TrackSource.SOURCE_UNKNOWN
    stream: str = ""
    dtx: bool = False
    """Audio: do not send digital silence (after 200 ms of it, one packet in 20 goes out); the
    receiver plays the pause as silence."""
    red: bool = False
    """Accepted as livekit has it; kitewire sends plain Opus with in-band FEC instead of RED
    (its server, like its transport, negotiates no RED)."""
    preconnect_buffer: bool = False
    audio_encoding: AudioEncoding | None = field(default_factory=AudioEncoding)
    """Audio: the Opus bitrate (``options.audio_encoding.max_bitrate = 64_000``); None: the default."""
    frame_metadata_features: list[int] = field(default_factory=list)
    """``FrameMetadataFeature`` values: the metadata given to ``capture_frame`` that
    travels with each frame (LiveKit's packet trailer) to ``VideoFrameEvent.metadata``."""
    scalability_mode: str = ""
    """An SVC mode such as "L1T3" or "L3T3_KEY" (W3C scalability mode names). Empty, the
    default, publishes simulcast layers as livekit does for every codec; a mode publishes
    one stream, as livekit's SVC does, which kitewire's encoders code with one spatial and
    one temporal layer whatever the mode (as libwebrtc falls back from a mode it lacks)."""
    video_encoder: int = VideoEncoderBackend.ENCODER_BACKEND_AUTO
    """A ``VideoEncoderBackend``; kitewire always encodes in software."""
    degradation_preference: int = DegradationPreference.BALANCED
    """A ``DegradationPreference``."""

    def __post_init__(self) -> None:
        if self.audio_encoding is not None:
            if not isinstance(self.audio_encoding, AudioEncoding):
                raise ValueError(
                    f"expected audio_encoding to be an AudioEncoding or None, got {type(self.audio_encoding).__name__}"
                )
            self.audio_encoding.opus_bitrate(1)
        if self.video_encoding is not None and not isinstance(self.video_encoding, VideoEncoding):
            raise ValueError(
                f"expected video_encoding to be a VideoEncoding or None, got {type(self.video_encoding).__name__}"
            )
        if int(self.video_codec) not in {int(codec) for codec in PUBLISHABLE_CODECS}:
            raise ValueError(
                "expected video_codec VideoCodec.VP8 (0), H264 (1), AV1 (2), VP9 (3) or H265 (4), "
                f"got {self.video_codec!r}"
            )
        features = self.frame_metadata_features
        if isinstance(features, (str, bytes)) or not all(
            not isinstance(value, bool) and isinstance(value, int) and int(value) in _FEATURE_NUMBERS
            for value in features
        ):
            raise ValueError(
                f"expected frame_metadata_features to be a list of FrameMetadataFeature values, got {features!r}"
            )
        self.frame_metadata_features = [int(value) for value in features]
        if not isinstance(self.scalability_mode, str) or not (
            self.scalability_mode == "" or _SCALABILITY_MODE.fullmatch(self.scalability_mode)
        ):
            raise ValueError(
                'expected scalability_mode to be "" or a mode like "L1T3", "L3T3_KEY" or "S2T1", '
                f"got {self.scalability_mode!r}"
            )
        if int(self.degradation_preference) not in _DEGRADATION_NUMBERS:
            raise ValueError(
                f"expected degradation_preference to be a DegradationPreference, got {self.degradation_preference!r}"
            )
        if int(self.video_encoder) not in _ENCODER_NUMBERS:
            raise ValueError(f"expected video_encoder to be a VideoEncoderBackend, got {self.video_encoder!r}")


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
