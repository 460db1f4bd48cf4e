"""kitewire.rtc: livekit.rtc's video API (Room, participants, tracks, VideoSource,
VideoStream) on kitewire's own WebRTC stack.

A livekit.rtc video program runs after changing ``from livekit import rtc`` to
``from kitewire import rtc``.
"""

from kitewire.frames import (
    TrackKind,
    TrackSource,
    VideoBufferType,
    VideoCodec,
    VideoFrame,
    VideoQuality,
    VideoRotation,
)

from ._types import (
    ConnectError,
    ConnectionQuality,
    ConnectionState,
    ContinualGatheringPolicy,
    DataStreamOptions,
    DisconnectReason,
    IceServer,
    IceTransportType,
    ParticipantKind,
    ParticipantState,
    PublishTrackError,
    RoomOptions,
    RtcConfiguration,
    TrackPublishOptions,
    UnpublishTrackError,
    VideoEncoding,
)
from .event_emitter import EventEmitter
from .participant import LocalParticipant, Participant, RemoteParticipant
from .room import Room
from .track import (
    LocalTrack,
    LocalVideoTrack,
    RemoteTrack,
    RemoteVideoTrack,
    StreamState,
    Track,
    VideoTrack,
)
from .track_publication import LocalTrackPublication, RemoteTrackPublication, TrackPublication
from .video_source import VideoSource
from .video_stream import VideoFrameEvent, VideoStream

__version__ = "0.1.0"

__all__ = [
    "ConnectError",
    "ConnectionQuality",
    "ConnectionState",
    "ContinualGatheringPolicy",
    "DataStreamOptions",
    "DisconnectReason",
    "EventEmitter",
    "IceServer",
    "IceTransportType",
    "LocalParticipant",
    "LocalTrack",
    "LocalTrackPublication",
    "LocalVideoTrack",
    "Participant",
    "ParticipantKind",
    "ParticipantState",
    "PublishTrackError",
    "RemoteParticipant",
    "RemoteTrack",
    "RemoteTrackPublication",
    "RemoteVideoTrack",
    "Room",
    "RoomOptions",
    "RtcConfiguration",
    "StreamState",
    "Track",
    "TrackKind",
    "TrackPublication",
    "TrackPublishOptions",
    "TrackSource",
    "UnpublishTrackError",
    "VideoBufferType",
    "VideoCodec",
    "VideoEncoding",
    "VideoFrame",
    "VideoFrameEvent",
    "VideoQuality",
    "VideoRotation",
    "VideoSource",
    "VideoStream",
    "VideoTrack",
    "__version__",
]
