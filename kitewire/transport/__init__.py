"""kitewire.transport: a WebRTC PeerConnection with raw-RTP tracks.

Built from aiortc's pieces (aioice ICE, DTLS-SRTP with pylibsrtp, SCTP data
channels) with our own SDP and RTP handling. Submodules:

- :mod:`kitewire.transport.peer_connection` -- PeerConnection, Transceiver,
  RtpSender, RtpReceiver, configuration
- :mod:`kitewire.transport.rtp` -- RTP header parse/rewrite, extension codecs
- :mod:`kitewire.transport.rtcp` -- RTCP parse/build (SR, RR, NACK, PLI, FIR, REMB, TWCC)
- :mod:`kitewire.transport.ice` -- IceServer, IceCandidateInit (trickle JSON)
- :mod:`kitewire.transport.datachannel` -- DataChannel
"""

from .datachannel import DataChannel, DataChannelState
from .ice import IceCandidateInit, IceServer
from .peer_connection import (
    DEFAULT_CODECS,
    Codec,
    ConnectionState,
    Direction,
    MediaKind,
    PeerConnection,
    PeerConnectionConfig,
    RtpReceiver,
    RtpSender,
    SdpType,
    SendEncoding,
    Transceiver,
)
from .rtp import RtpHeader

__all__ = [
    "DataChannel",
    "DataChannelState",
    "IceCandidateInit",
    "IceServer",
    "DEFAULT_CODECS",
    "Codec",
    "ConnectionState",
    "Direction",
    "MediaKind",
    "PeerConnection",
    "PeerConnectionConfig",
    "RtpReceiver",
    "RtpSender",
    "SdpType",
    "SendEncoding",
    "Transceiver",
    "RtpHeader",
]
