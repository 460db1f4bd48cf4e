"""One client participant's session: signal client, publisher and subscriber
PeerConnections, negotiation, and the per-track encode and decode pipelines.

``kitewire.rtc`` builds livekit.rtc's object model on top of :class:`RtcEngine`.
"""

from .publisher import VideoPublishPipeline
from .receiver import VideoReceivePipeline
from .session import EngineError, EngineListener, PublishedVideo, RtcEngine

__all__ = [
    "EngineError",
    "EngineListener",
    "PublishedVideo",
    "RtcEngine",
    "VideoPublishPipeline",
    "VideoReceivePipeline",
]
