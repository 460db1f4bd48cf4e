"""One client participant's session: the LiveKit client protocol (:mod:`kitewire.engine.wire`),
and on top of it the SDK's engine with its per-track encode and decode pipelines.

``kitewire.rtc`` builds livekit.rtc's object model on top of :class:`RtcEngine`;
``kitewire load-test`` builds its simulated participants on :class:`WireClient`.
"""

from .publisher import VideoPublishPipeline
from .receiver import VideoReceivePipeline
from .reconnect import ReconnectingEngine, SessionListener
from .session import EngineEvents, EngineListener, FrameConsumer, JoinParameters, PublishedVideo, RtcEngine
from .wire import EngineError, IncomingTrack, JoinMode, WireClient, WireListener, add_track_request, parse_msid

__all__ = [
    "EngineError",
    "EngineEvents",
    "EngineListener",
    "FrameConsumer",
    "IncomingTrack",
    "JoinMode",
    "JoinParameters",
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
