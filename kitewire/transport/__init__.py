"""kitewire.transport: a WebRTC PeerConnection with raw-RTP tracks.

Built on aiortc's pieces (aioice ICE, DTLS-SRTP with pylibsrtp, SCTP data
channels) with our own SDP and RTP handling. Submodules:

- :mod:`kitewire.transport.peer_connection` -- PeerConnection, Transceiver,
  RtpSender, RtpReceiver, configuration
- :mod:`kitewire.transport.rtp` -- RTP header parse/rewrite, extension codecs
- :mod:`kitewire.transport.rtcp` -- RTCP parse/build (SR, RR, NACK, PLI, FIR, REMB, TWCC)
- :mod:`kitewire.transport.ice` -- IceServer, IceCandidateInit (trickle JSON)
- :mod:`kitewire.transport.datachannel` -- DataChannel
- :mod:`kitewire.transport.sdp` -- the SDP model, parser and writer

A minimal exchange (both sides in one process, loopback only)::

    offerer = PeerConnection(PeerConnectionConfig(loopback_only=True))
    answerer = PeerConnection(PeerConnectionConfig(loopback_only=True))
    video = offerer.add_transceiver("video", "sendonly")
    answerer.on_track = lambda t: setattr(t.receiver, "on_rtp", handle_packet)
    await answerer.set_remote_description(await offerer.create_offer(), "offer")
    await offerer.set_remote_description(await answerer.create_answer(), "answer")
    await offerer.wait_connected(10)
    vp8 = next(c for c in video.codecs if c.name == "VP8")
    video.sender.send_rtp(video.sender.build_packet(
        payload, payload_type=vp8.payload_type, sequence_number=seq, timestamp=ts, marker=True))

``handle_packet(packet: bytes, header: RtpHeader)`` runs on the event loop for
every packet; RTCP feedback arrives on the sender's ``on_nack``,
``on_keyframe_request``, ``on_remb``, ``on_receiver_report`` and
``on_transport_cc`` callbacks. Receiver reports, sender reports and
transport-wide CC feedback are sent automatically.
"""

from .datachannel import DataChannel, DataChannelState
from .ice import IceCandidateInit, IceServer
from .peer_connection import (
    DEFAULT_CODECS,
    Codec,
    ConnectionState,
    Direction,
    InboundStreamStats,
    MediaKind,
    OutboundStreamStats,
    PeerConnection,
    PeerConnectionConfig,
    PeerConnectionStats,
    RtpReceiver,
    RtpSender,
    SdpType,
    SendEncoding,
    SignalingState,
    Transceiver,
)
from .rtp import RtpHeader

__all__ = [
    "DEFAULT_CODECS",
    "Codec",
    "ConnectionState",
    "DataChannel",
    "DataChannelState",
    "Direction",
    "IceCandidateInit",
    "IceServer",
    "InboundStreamStats",
    "MediaKind",
    "OutboundStreamStats",
    "PeerConnection",
    "PeerConnectionConfig",
    "PeerConnectionStats",
    "RtpHeader",
    "RtpReceiver",
    "RtpSender",
    "SdpType",
    "SendEncoding",
    "SignalingState",
    "Transceiver",
]
