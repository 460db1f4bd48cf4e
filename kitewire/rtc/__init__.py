"""kitewire.rtc: livekit.rtc's video API (Room, participants, tracks, VideoSource,
VideoStream) on kitewire's own WebRTC stack.

A livekit.rtc video program runs after changing ``from livekit import rtc`` to
``from kitewire import rtc``. Typical use::

    room = rtc.Room()

    @room.on("track_subscribed")
    def on_track(track, publication, participant):
        asyncio.create_task(consume(rtc.VideoStream(track, capacity=1,
                                                    format=rtc.VideoBufferType.RGBA)))

    await room.connect(url, token)
    source = rtc.VideoSource(1280, 720)
    track = rtc.LocalVideoTrack.create_video_track("camera", source)
    await room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA))
    source.capture_frame(frame, timestamp_us=capture_time_us)

Audio: AudioSource / LocalAudioTrack publish Opus (48 kHz, mono or stereo);
AudioStream yields PCM at the rate and channel count asked for.
Scope: data packets and streams, RPC and end-to-end
encryption are not implemented here. A lost signal connection or failed
PeerConnection is recovered by a full reconnect (``reconnecting`` then
``reconnected``, or ``disconnected`` after ``Room.reconnect_timeout``
seconds of failed attempts); session resume is not attempted. As in livekit,
publishing is simulcast unless ``TrackPublishOptions(simulcast=False)``.
Frames cross the network with their capture ``timestamp_us`` and ``rotation``
(RTP header extensions abs-capture-time and video-orientation).
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
from kitewire.frames.audio_frame import AudioFrame, combine_audio_frames
from kitewire.frames.audio_resampler import AudioResampler, AudioResamplerQuality

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
from .audio_mixer import AudioMixer
from .audio_source import AudioSource
from .audio_stream import AudioFilter, AudioFrameEvent, AudioStream, NoiseCancellationOptions
from .audio_track import AudioTrack, LocalAudioTrack, LocalTrack, RemoteAudioTrack, RemoteTrack
from .avsync import AVSynchronizer
from .event_emitter import EventEmitter
from .media_devices import MediaDevices, PlatformAudio, PlatformAudioError
from .participant import LocalParticipant, Participant, RemoteParticipant
from .room import Room
from .track import (
    LocalVideoTrack,
    RemoteVideoTrack,
    StreamState,
    Track,
    VideoTrack,
)
from .track_publication import (
    LocalTrackPublication,
    RemoteTrackPublication,
    TrackPublication,
)
from .video_source import VideoSource
from .video_stream import VideoFrameEvent, VideoStream

__version__ = "0.1.0"

__all__ = [
    "AVSynchronizer",
    "AudioFilter",
    "AudioFrame",
    "AudioFrameEvent",
    "AudioMixer",
    "AudioResampler",
    "AudioResamplerQuality",
    "AudioSource",
    "AudioStream",
    "AudioTrack",
    "ConnectError",
    "ConnectionQuality",
    "ConnectionState",
    "ContinualGatheringPolicy",
    "DataStreamOptions",
    "DisconnectReason",
    "EventEmitter",
    "IceServer",
    "IceTransportType",
    "LocalAudioTrack",
    "LocalParticipant",
    "LocalTrack",
    "LocalTrackPublication",
    "LocalVideoTrack",
    "MediaDevices",
    "NoiseCancellationOptions",
    "Participant",
    "ParticipantKind",
    "ParticipantState",
    "PlatformAudio",
    "PlatformAudioError",
    "PublishTrackError",
    "RemoteAudioTrack",
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
    "combine_audio_frames",
]
