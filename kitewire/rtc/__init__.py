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

Scope: video (VP8, H264, VP9, AV1 and H265 published and received), frame
metadata (``TrackPublishOptions(frame_metadata_features=...)``, ``capture_frame(...,
metadata=...)`` -> ``VideoFrameEvent.metadata``), audio (AudioSource / LocalAudioTrack
publish Opus at 48 kHz, mono or stereo; AudioStream yields PCM at the rate and channel
count asked for), WebRTC statistics (``Room.get_rtc_stats()``, ``Track.get_stats()``),
data packets (``publish_data``/``data_received``, DTMF, transcriptions), RPC
(``perform_rpc``/``register_rpc_method``), text and byte streams, and participant
metadata, names and attributes, and end-to-end encryption in LiveKit's frame format
(``RoomOptions(encryption=E2EEOptions(...))``, ``Room.e2ee_manager``);
tests/rtc/test_api_parity.py lists every livekit.rtc name still missing. A lost signal
connection or failed PeerConnection is recovered by a full reconnect (``reconnecting``
then ``reconnected``, or ``disconnected`` after ``Room.reconnect_timeout`` seconds of
failed attempts); session resume is not attempted. As in livekit, publishing is
simulcast unless ``TrackPublishOptions(simulcast=False)`` (or a ``scalability_mode``).
Frames cross the network with their capture ``timestamp_us`` and ``rotation`` (RTP
header extensions abs-capture-time and video-orientation). A room the program never
disconnects is closed when ``asyncio.run()`` ends.
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
from kitewire.media.packet_trailer import FrameMetadata

from . import stats
from ._participant_data import PublishDataError, PublishDTMFError, PublishTranscriptionError
from ._types import (
    AudioEncoding,
    ConnectError,
    ConnectionQuality,
    ConnectionState,
    ContinualGatheringPolicy,
    DataStreamOptions,
    DegradationPreference,
    DisconnectReason,
    FrameMetadataFeature,
    IceServer,
    IceTransportType,
    ParticipantKind,
    ParticipantState,
    PublishTrackError,
    RoomOptions,
    RtcConfiguration,
    TrackPublishOptions,
    UnpublishTrackError,
    VideoEncoderBackend,
    VideoEncoding,
)
from .audio_mixer import AudioMixer
from .audio_source import AudioSource
from .audio_stream import AudioFilter, AudioFrameEvent, AudioStream, NoiseCancellationOptions
from .audio_track import AudioTrack, LocalAudioTrack, LocalTrack, RemoteAudioTrack, RemoteTrack
from .avsync import AVSynchronizer
from .data_packet import DataPacket, DataPacketKind, SipDTMF
from .data_stream import (
    ByteStreamInfo,
    ByteStreamReader,
    ByteStreamWriter,
    StreamError,
    TextStreamInfo,
    TextStreamReader,
    TextStreamWriter,
)
from .e2ee import (
    E2EEManager,
    E2EEOptions,
    EncryptionState,
    EncryptionType,
    FrameCryptor,
    KeyDerivationFunction,
    KeyProvider,
    KeyProviderOptions,
)
from .event_emitter import EventEmitter
from .media_devices import MediaDevices, PlatformAudio, PlatformAudioError
from .participant import LocalParticipant, Participant, ParticipantTrackPermission, RemoteParticipant
from .room import Room, RtcStats
from .rpc import RpcCallInfo, RpcError, RpcInterceptor, RpcInvocationData
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
from .transcription import Transcription, TranscriptionSegment
from .version import __version__
from .video_source import VideoSource
from .video_stream import VideoFrameEvent, VideoStream

__all__ = [
    "AVSynchronizer",
    "AudioEncoding",
    "AudioFilter",
    "AudioFrame",
    "AudioFrameEvent",
    "AudioMixer",
    "AudioResampler",
    "AudioResamplerQuality",
    "AudioSource",
    "AudioStream",
    "AudioTrack",
    "ByteStreamInfo",
    "ByteStreamReader",
    "ByteStreamWriter",
    "ConnectError",
    "ConnectionQuality",
    "ConnectionState",
    "ContinualGatheringPolicy",
    "DataPacket",
    "DataPacketKind",
    "DataStreamOptions",
    "DegradationPreference",
    "DisconnectReason",
    "E2EEManager",
    "E2EEOptions",
    "EncryptionState",
    "EncryptionType",
    "EventEmitter",
    "FrameCryptor",
    "FrameMetadata",
    "FrameMetadataFeature",
    "IceServer",
    "IceTransportType",
    "KeyDerivationFunction",
    "KeyProvider",
    "KeyProviderOptions",
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
    "ParticipantTrackPermission",
    "PlatformAudio",
    "PlatformAudioError",
    "PublishDTMFError",
    "PublishDataError",
    "PublishTrackError",
    "PublishTranscriptionError",
    "RemoteAudioTrack",
    "RemoteParticipant",
    "RemoteTrack",
    "RemoteTrackPublication",
    "RemoteVideoTrack",
    "Room",
    "RoomOptions",
    "RpcCallInfo",
    "RpcError",
    "RpcInterceptor",
    "RpcInvocationData",
    "RtcConfiguration",
    "RtcStats",
    "SipDTMF",
    "StreamError",
    "StreamState",
    "TextStreamInfo",
    "TextStreamReader",
    "TextStreamWriter",
    "Track",
    "TrackKind",
    "TrackPublication",
    "TrackPublishOptions",
    "TrackSource",
    "Transcription",
    "TranscriptionSegment",
    "UnpublishTrackError",
    "VideoBufferType",
    "VideoCodec",
    "VideoEncoderBackend",
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
    "stats",
]
