"""The engine in a media process of its own, so media never waits for the application's GIL.

kitewire.rtc's engine sessions run by default in one media process per application
(:mod:`.supervisor`), each seen through a :class:`RemoteEngine` with the interface of
:class:`~kitewire.engine.handle.EngineHandle`; frames cross in shared memory
(:mod:`.frame_ring`, :mod:`.frame_link`), commands, events and slot hand-backs over a
Unix socket (:mod:`.channel`); :mod:`.child` is the media process's program.

``KITEWIRE_MEDIA_PROCESS=0`` in the environment runs the engine in the application's
own process instead (for debugging; the behaviour is the same).
"""

from __future__ import annotations

import os

from kitewire.engine.handle import EngineFactory

from .remote_engine import RemoteAudioPublishPipeline, RemoteEngine, RemotePublished, RemotePublishPipeline
from .supervisor import MediaProcess

__all__ = [
    "MediaProcess",
    "RemoteAudioPublishPipeline",
    "RemoteEngine",
    "RemotePublishPipeline",
    "RemotePublished",
    "engine_factory",
    "media_process_enabled",
]


def media_process_enabled() -> bool:
    """False when ``KITEWIRE_MEDIA_PROCESS=0``: engines then run in this process."""
    return os.environ.get("KITEWIRE_MEDIA_PROCESS", "1").strip() != "0"


def engine_factory() -> EngineFactory:
    """What makes engine sessions now: RemoteEngine (default) or the in-process RtcEngine."""
    if media_process_enabled():
        return RemoteEngine
    # imported only here: with the media process on, the application never loads the engine
    from kitewire.engine.session import RtcEngine

    return RtcEngine
