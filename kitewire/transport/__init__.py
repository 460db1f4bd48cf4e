"""kitewire.transport: a WebRTC PeerConnection with raw-RTP tracks.

Built on aiortc's ICE, DTLS-SRTP (pylibsrtp) and SCTP machinery, reached only
through :mod:`~kitewire.transport.aiortc_seam`, with our own SDP and RTP
handling. Submodules, one concern each:

- :mod:`~kitewire.transport.peer_connection` -- PeerConnection (the facade), its configuration
- :mod:`~kitewire.transport.codecs` -- Codec, DEFAULT_CODECS, the codec/extension tables
- :mod:`~kitewire.transport.transceiver`, :mod:`~kitewire.transport.sender`,
  :mod:`~kitewire.transport.receiver` -- Transceiver, RtpSender, RtpReceiver
- :mod:`~kitewire.transport.negotiation` -- offer/answer m-lines over the SDP model
- :mod:`~kitewire.transport.router` -- RTP demux (mid/rid learning) and RTCP dispatch
- :mod:`~kitewire.transport.feedback` -- pluggable feedback generators:
  :mod:`~kitewire.transport.reports` (SR/RR), :mod:`~kitewire.transport.twcc` (transport-cc)
- :mod:`~kitewire.transport.stats` -- per-SSRC statistics and snapshots
- :mod:`~kitewire.transport.candidates` -- remote ICE candidates (filtered, bounded)
- :mod:`~kitewire.transport.aiortc_seam` -- the one module using aiortc/aioice
- :mod:`~kitewire.transport.rtp` -- RTP header parse/rewrite, header templates, extension codecs
- :mod:`~kitewire.transport.rtcp` -- RTCP parse/build (SR, RR, NACK, PLI, FIR, REMB, TWCC)
- :mod:`~kitewire.transport.ice` -- IceServer, IceCandidateInit (trickle JSON)
- :mod:`~kitewire.transport.datachannel` -- DataChannel
- :mod:`~kitewire.transport.sdp` -- the SDP model, parser and writer

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

from typing import TYPE_CHECKING

from kitewire._lazy import lazy_exports

if TYPE_CHECKING:
    from .codecs import DEFAULT_CODECS, Codec, MediaKind
    from .datachannel import DataChannel, DataChannelState
    from .ice import IceCandidateInit, IceServer
    from .peer_connection import ConnectionState, PeerConnection, PeerConnectionConfig, SdpType, SignalingState
    from .receiver import RtpReceiver
    from .rtp import RtpHeader, RtpHeaderTemplate
    from .sender import RtpSender, SendEncoding
    from .stats import InboundStreamStats, OutboundStreamStats, PeerConnectionStats
    from .transceiver import Direction, Transceiver

# imported on first use (see kitewire/_lazy.py): the application's side of a media
# process needs a few light modules of this package, not all of it
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DEFAULT_CODECS": ".codecs",
        "Codec": ".codecs",
        "MediaKind": ".codecs",
        "DataChannel": ".datachannel",
        "DataChannelState": ".datachannel",
        "IceCandidateInit": ".ice",
        "IceServer": ".ice",
        "ConnectionState": ".peer_connection",
        "PeerConnection": ".peer_connection",
        "PeerConnectionConfig": ".peer_connection",
        "SdpType": ".peer_connection",
        "SignalingState": ".peer_connection",
        "RtpReceiver": ".receiver",
        "RtpHeader": ".rtp",
        "RtpHeaderTemplate": ".rtp",
        "RtpSender": ".sender",
        "SendEncoding": ".sender",
        "InboundStreamStats": ".stats",
        "OutboundStreamStats": ".stats",
        "PeerConnectionStats": ".stats",
        "Direction": ".transceiver",
        "Transceiver": ".transceiver",
    },
)

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
    "RtpHeaderTemplate",
    "RtpReceiver",
    "RtpSender",
    "SdpType",
    "SendEncoding",
    "SignalingState",
    "Transceiver",
]
