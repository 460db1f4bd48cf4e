"""One client participant's session: the LiveKit client protocol (:mod:`kitewire.engine.wire`),
and on top of it the SDK's engine with its per-track encode and decode pipelines.

``kitewire.rtc`` builds livekit.rtc's object model on top of :class:`RtcEngine`;
``kitewire load-test`` builds its simulated participants on :class:`WireClient`.
"""

from .audio_publisher import AudioPublishPipeline
from .audio_receiver import AudioReceivePipeline
from .publisher import VideoPublishPipeline
from .receiver import VideoReceivePipeline
from .reconnect import ReconnectingEngine, SessionListener
from .session import (
    AudioConsumer,
    EngineEvents,
    EngineListener,
    FrameConsumer,
    JoinParameters,
    PublishedAudio,
    PublishedVideo,
    RtcEngine,
)
from .wire import EngineError, IncomingTrack, JoinMode, WireClient, WireListener, add_track_request, parse_msid

__all__ = [
    "AudioConsumer",
    "AudioPublishPipeline",
    "AudioReceivePipeline",
    "EngineError",
    "EngineEvents",
    "EngineListener",
    "FrameConsumer",
    "IncomingTrack",
    "JoinMode",
    "JoinParameters",
    "PublishedAudio",
    "PublishedVideo",
    "ReconnectingEngine",
    "RtcEngine",
    "SessionListener",
    "VideoPublishPipeline",
    "VideoReceivePipeline",
    "WireClient",
    "WireListener",
    "add_track_request",
    "parse_msid",
]
