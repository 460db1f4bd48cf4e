"""LiveKit signalling shared by kitewire's client and server.

* ``connection``: SignalRequest/SignalResponse protobufs over aiohttp WebSockets.
* ``join``: building and parsing join URLs (``/rtc/v1?join_request=`` and legacy ``/rtc``).
* ``token``: HS256 access tokens (create and verify).
* ``client``: ``connect(url, token)`` -> ``(SignalClient, JoinResponse)``.
"""

from .client import SignalClient, SignalConnectError, connect
from .connection import (
    ClientSignalConnection,
    ServerSignalConnection,
    SignalConnection,
    SignalProtocolError,
)
from .join import (
    PROTOCOL_VERSION,
    JoinParams,
    build_join_url,
    decode_join_request,
    encode_join_request,
    parse_join_request,
    validate_url,
    websocket_base_url,
)
from .token import (
    DEV_API_KEY,
    DEV_API_SECRET,
    AccessClaims,
    TokenError,
    VideoGrant,
    create_token,
    parse_keys,
    verify_token,
)

__all__ = [
    "DEV_API_KEY",
    "DEV_API_SECRET",
    "PROTOCOL_VERSION",
    "AccessClaims",
    "ClientSignalConnection",
    "JoinParams",
    "ServerSignalConnection",
    "SignalClient",
    "SignalConnectError",
    "SignalConnection",
    "SignalProtocolError",
    "TokenError",
    "VideoGrant",
    "build_join_url",
    "connect",
    "create_token",
    "decode_join_request",
    "encode_join_request",
    "parse_join_request",
    "parse_keys",
    "validate_url",
    "verify_token",
    "websocket_base_url",
]
