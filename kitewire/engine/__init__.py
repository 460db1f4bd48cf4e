"""One client participant's session: the LiveKit client protocol (:mod:`kitewire.engine.wire`),
and on top of it the SDK's engine with its per-track encode and decode pipelines.

``kitewire.rtc`` builds livekit.rtc's object model on top of :class:`RtcEngine`;
``kitewire load-test`` builds its simulated participants on :class:`WireClient`.
"""

from typing import TYPE_CHECKING

from kitewire._lazy import lazy_exports

if TYPE_CHECKING:
    from .audio_publisher import AudioPublishPipeline
    from .audio_receiver import AudioReceivePipeline
    from .handle import AudioConsumer, EngineError, EngineEvents, EngineListener, FrameConsumer, JoinParameters
    from .publisher import VideoPublishPipeline
    from .receiver import VideoReceivePipeline
    from .reconnect import ReconnectingEngine, SessionListener
    from .session import PublishedAudio, PublishedVideo, RtcEngine
    from .wire import IncomingTrack, JoinMode, WireClient, WireListener, add_track_request, parse_msid

# imported on first use (see kitewire/_lazy.py): the application's side of a media
# process needs a few light modules of this package, not all of it
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AudioPublishPipeline": ".audio_publisher",
        "AudioReceivePipeline": ".audio_receiver",
        "VideoPublishPipeline": ".publisher",
        "VideoReceivePipeline": ".receiver",
        "ReconnectingEngine": ".reconnect",
        "SessionListener": ".reconnect",
        "AudioConsumer": ".handle",
        "EngineEvents": ".handle",
        "EngineListener": ".handle",
        "FrameConsumer": ".handle",
        "JoinParameters": ".handle",
        "PublishedAudio": ".session",
        "PublishedVideo": ".session",
        "RtcEngine": ".session",
        "EngineError": ".handle",
        "IncomingTrack": ".wire",
        "JoinMode": ".wire",
        "WireClient": ".wire",
        "WireListener": ".wire",
        "add_track_request": ".wire",
        "parse_msid": ".wire",
    },
)

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
