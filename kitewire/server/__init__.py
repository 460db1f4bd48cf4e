"""kitewire's embedded LiveKit-compatible SFU.

``Server`` (async start/stop, async context manager) serves LiveKit
signalling on one HTTP port and forwards RTP between participants without
decoding it. ``ServerConfig`` holds its settings; ``kitewire serve`` runs it
from the command line.
"""

from .config import ServerConfig
from .server import JoinRefused, Server

__all__ = ["Server", "ServerConfig", "JoinRefused"]
