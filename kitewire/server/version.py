"""What the server tells clients it is, in the JoinResponse.

The official SDKs gate features on the LiveKit server version they are told
(livekit's Rust core refuses ``perform_rpc`` below 1.8.0), so the version a
client reads is the LiveKit release whose client-facing features this server
implements, not kitewire's own version number; that one goes in
``ServerInfo.debug_info``. Raise :data:`LIVEKIT_COMPATIBLE_VERSION` only when
the features the newer release's SDKs switch on work here.
"""

from __future__ import annotations

from livekit.protocol import models as pb_models

from kitewire.signal.join import PROTOCOL_VERSION

__all__ = ["LIVEKIT_COMPATIBLE_VERSION", "fill_server_info"]

#: The livekit-server release whose signal features (RequestResponse for metadata
#: updates, data packets with RPC and data streams relayed) this server has.
LIVEKIT_COMPATIBLE_VERSION = "1.8.0"


def fill_server_info(info: pb_models.ServerInfo, node_id: str) -> None:
    """Fill ``info`` for a JoinResponse."""
    from kitewire import __version__

    info.edition = pb_models.ServerInfo.Standard
    info.version = LIVEKIT_COMPATIBLE_VERSION
    info.protocol = PROTOCOL_VERSION
    info.node_id = node_id
    info.debug_info = f"kitewire {__version__}"
