"""A WebRTC PeerConnection with raw-RTP tracks, built from aiortc's pieces.

One ICE + DTLS transport carries every m-line (max-bundle, rtcp-mux). Media is
raw RTP in and out: senders take finished RTP packets and SRTP-protect them
synchronously, receivers hand each decrypted packet with a light parsed header
to a callback. RTCP feedback is routed to the sender or receiver that owns the
SSRC it is about.

Callbacks are plain attributes. A callback may be a normal function or return
an awaitable (then it is scheduled as a task); the per-packet ``on_rtp`` must be
a normal function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

from .datachannel import DataChannel
from .ice import IceCandidateInit, IceServer
from .rtcp import ReportBlock, SenderReport, TransportCcFeedback
from .rtp import SUPPORTED_HEADER_EXTENSIONS, RtpHeader

__all__ = [
    "MediaKind",
    "Direction",
    "SdpType",
    "ConnectionState",
    "Codec",
    "SendEncoding",
    "DEFAULT_CODECS",
    "PeerConnectionConfig",
    "RtpSender",
    "RtpReceiver",
    "Transceiver",
    "PeerConnection",
]

MediaKind = Literal["audio", "video"]
Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
SdpType = Literal["offer", "answer"]
ConnectionState = Literal["new", "connecting", "connected", "failed", "closed"]

#: rtcp-fb values offered/accepted for video codecs.
VIDEO_RTCP_FEEDBACK: tuple[str, ...] = (
    "goog-remb",
    "transport-cc",
    "ccm fir",
    "nack",
    "nack pli",
)
#: rtcp-fb values offered/accepted for audio codecs.
AUDIO_RTCP_FEEDBACK: tuple[str, ...] = ("transport-cc",)


@dataclass(frozen=True)
class Codec:
    """One RTP codec. ``mime_type`` is "video/VP8", "video/H264", "audio/opus", ...

    ``payload_type`` is None in configuration (the offerer assigns one) and
    set in negotiated codec lists. ``fmtp`` is the a=fmtp parameter string.
    """

    mime_type: str
    clock_rate: int
    channels: int | None = None
    fmtp: str = ""
    payload_type: int | None = None
    rtcp_feedback: tuple[str, ...] = ()

    @property
    def kind(self) -> MediaKind:
        """"audio" or "video", from the mime type."""
        return "audio" if self.mime_type.lower().startswith("audio/") else "video"

    @property
    def name(self) -> str:
        """The encoding name (the part after the slash), e.g. "VP8"."""
        return self.mime_type.split("/", 1)[-1]


#: Defaults: VP8, H264 constrained baseline (packetization-mode=1) and opus.
#: As answerer, any H264 profile with packetization-mode=1 is accepted.
DEFAULT_CODECS: tuple[Codec, ...] = (
    Codec("video/VP8", 90000, rtcp_feedback=VIDEO_RTCP_FEEDBACK),
    Codec(
        "video/H264",
        90000,
        fmtp="level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        rtcp_feedback=VIDEO_RTCP_FEEDBACK,
    ),
    Codec("audio/opus", 48000, 2, fmtp="minptime=10;useinbandfec=1", rtcp_feedback=AUDIO_RTCP_FEEDBACK),
)


@dataclass(frozen=True)
class SendEncoding:
    """One simulcast layer we send: its rid ("q", "h", "f") and its SSRC."""

    rid: str
    ssrc: int


@dataclass
class PeerConnectionConfig:
    """Configuration of a :class:`PeerConnection`.

    ``loopback_only=True`` gathers only a 127.0.0.1 host candidate (per
    connection; nothing process-wide is patched). STUN/TURN servers are only
    contacted when listed in ``ice_servers``. ``codecs`` lists what we offer and
    accept (kind from the mime type); ``header_extensions`` the extension URIs
    we offer and accept.
    """

    ice_servers: list[IceServer] = field(default_factory=list)
    loopback_only: bool = False
    codecs: list[Codec] = field(default_factory=lambda: list(DEFAULT_CODECS))
    header_extensions: list[str] = field(
        default_factory=lambda: list(SUPPORTED_HEADER_EXTENSIONS)
    )
    #: Seconds between automatic SR/RR reports.
    rtcp_report_interval: float = 1.0
    #: Seconds between transport-wide CC feedback packets (0 disables).
    transport_cc_interval: float = 0.05
    #: CNAME written into SDP a=ssrc lines and RTCP SDES.
    cname: str | None = None


class RtpSender:
    """The sending half of a :class:`Transceiver`.

    ``send_rtp`` sends finished RTP packets AS GIVEN (it does not add mid/rid);
    use :meth:`build_packet` to get a packet with the mid (and, for simulcast,
    rid) extensions and any other negotiated extensions written. For
    simulcast, ``encodings`` lists one (rid, ssrc) per layer.

    Feedback callbacks (attributes, called on the event loop):
    ``on_nack(media_ssrc, lost_seqs)``, ``on_keyframe_request(media_ssrc)`` for
    PLI and FIR, ``on_remb(bitrate_bps, ssrcs)``,
    ``on_receiver_report(report_block, rtt_seconds_or_None)``,
    ``on_transport_cc(feedback)``.
    """

    on_nack: Callable[[int, list[int]], object] | None
    on_keyframe_request: Callable[[int], object] | None
    on_remb: Callable[[int, list[int]], object] | None
    on_receiver_report: Callable[[ReportBlock, float | None], object] | None
    on_transport_cc: Callable[[TransportCcFeedback], object] | None

    @property
    def ssrc(self) -> int:
        """The SSRC of the first (or only) encoding."""
        raise NotImplementedError

    @property
    def encodings(self) -> list[SendEncoding]:
        """One (rid, ssrc) per layer; a single entry with rid "" when not simulcast."""
        raise NotImplementedError

    @property
    def mid(self) -> str | None:
        """The mid of the owning transceiver once negotiated."""
        raise NotImplementedError

    @property
    def header_extensions(self) -> dict[str, int]:
        """Negotiated header extensions: URI -> id."""
        raise NotImplementedError

    @property
    def codecs(self) -> list[Codec]:
        """Negotiated codecs with their payload types (preferred first)."""
        raise NotImplementedError

    @property
    def packets_sent(self) -> int:
        """RTP packets handed to the network so far (all encodings)."""
        raise NotImplementedError

    def ssrc_for_rid(self, rid: str) -> int:
        """The SSRC of simulcast layer ``rid``; ValueError if unknown."""
        raise NotImplementedError

    def build_packet(
        self,
        payload: bytes | bytearray | memoryview,
        *,
        payload_type: int,
        sequence_number: int,
        timestamp: int,
        marker: bool = False,
        rid: str | None = None,
        ssrc: int | None = None,
        extensions: dict[str, bytes] | None = None,
    ) -> bytes:
        """Build an RTP packet for this sender.

        Writes the mid extension (when negotiated), the rid extension when
        ``rid`` is given, and ``extensions`` (URI -> value, skipped when the URI
        was not negotiated). The SSRC is ``ssrc`` or that of ``rid`` or
        :attr:`ssrc`.
        """
        raise NotImplementedError

    def send_rtp(self, packet: bytes | bytearray) -> None:
        """SRTP-protect and send one RTP packet now (synchronous, no task).

        Silently dropped (and counted in ``packets_dropped``) when the
        transport is not connected yet or is closed.
        """
        raise NotImplementedError

    def send_rtcp(self, packet: bytes) -> None:
        """SRTCP-protect and send one (compound) RTCP packet now."""
        raise NotImplementedError


class RtpReceiver:
    """The receiving half of a :class:`Transceiver`.

    Set ``on_rtp(packet_bytes, header)`` to get every decrypted packet of this
    m-line; ``header.rid`` names the simulcast layer (None if not simulcast).
    ``on_sender_report(sr)`` is called for RTCP SRs of its SSRCs. Receiver
    reports and transport-cc feedback are sent automatically.
    """

    on_rtp: Callable[[bytes, RtpHeader], None] | None
    on_sender_report: Callable[[SenderReport], object] | None

    @property
    def rids(self) -> list[str]:
        """Simulcast rids the remote sends on this m-line (empty if not simulcast)."""
        raise NotImplementedError

    @property
    def ssrcs(self) -> dict[int, str | None]:
        """SSRCs seen/announced so far -> their rid (None if not simulcast)."""
        raise NotImplementedError

    @property
    def codecs(self) -> list[Codec]:
        """Negotiated codecs with payload types."""
        raise NotImplementedError

    @property
    def header_extensions(self) -> dict[str, int]:
        """Negotiated header extensions: URI -> id."""
        raise NotImplementedError

    def request_keyframe(self, ssrc: int) -> None:
        """Send a PLI for ``ssrc``."""
        raise NotImplementedError

    def send_fir(self, ssrc: int) -> None:
        """Send a FIR for ``ssrc`` (for peers that ignore PLI)."""
        raise NotImplementedError

    def send_nack(self, ssrc: int, sequence_numbers: list[int]) -> None:
        """Ask the sender of ``ssrc`` to retransmit these sequence numbers."""
        raise NotImplementedError

    def send_remb(self, bitrate: int, ssrcs: list[int] | None = None) -> None:
        """Send a REMB (bits per second) for ``ssrcs`` (default: all seen)."""
        raise NotImplementedError

    def send_rtcp(self, packet: bytes) -> None:
        """SRTCP-protect and send one (compound) RTCP packet now."""
        raise NotImplementedError


class Transceiver:
    """One m-line: its mid, kind, direction and a sender/receiver pair.

    ``direction`` is our side's wish (may be changed before the next offer or
    answer); ``current_direction`` is what was negotiated. ``codecs`` and
    ``header_extensions`` are the negotiated values (empty before
    negotiation). ``remote_stream_id``/``remote_track_id`` come from the
    remote a=msid.
    """

    mid: str | None
    kind: MediaKind
    direction: Direction
    current_direction: Direction | None
    stream_id: str
    track_id: str
    remote_stream_id: str | None
    remote_track_id: str | None
    sender: RtpSender
    receiver: RtpReceiver

    @property
    def codecs(self) -> list[Codec]:
        """Negotiated codecs with payload types, preferred first."""
        raise NotImplementedError

    @property
    def header_extensions(self) -> dict[str, int]:
        """Negotiated header extensions: URI -> id."""
        raise NotImplementedError

    @property
    def stopped(self) -> bool:
        """True after :meth:`stop`; the m-line is rejected (port 0) from then on."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop this transceiver; the next offer/answer sets its m-line to port 0."""
        raise NotImplementedError


class PeerConnection:
    """A bundled WebRTC peer connection with raw-RTP transceivers.

    Callbacks (attributes):
    ``on_ice_candidate(IceCandidateInit | None)`` for trickle (None = end),
    ``on_track(transceiver)`` when a remote description adds an m-line the
    remote sends on, ``on_data_channel(channel)`` for remote-created channels,
    ``on_connection_state_change(state)``.
    """

    on_ice_candidate: Callable[[IceCandidateInit | None], object] | None
    on_track: Callable[[Transceiver], object] | None
    on_data_channel: Callable[[DataChannel], object] | None
    on_connection_state_change: Callable[[ConnectionState], object] | None

    def __init__(self, config: PeerConnectionConfig | None = None) -> None:
        raise NotImplementedError

    @property
    def connection_state(self) -> ConnectionState:
        """"new", "connecting", "connected", "failed" or "closed"."""
        raise NotImplementedError

    @property
    def local_description(self) -> str | None:
        """The last local SDP (offer or answer)."""
        raise NotImplementedError

    @property
    def remote_description(self) -> str | None:
        """The last remote SDP."""
        raise NotImplementedError

    @property
    def transceivers(self) -> list[Transceiver]:
        """All transceivers in m-line order (stopped ones included)."""
        raise NotImplementedError

    def add_transceiver(
        self,
        kind: MediaKind,
        direction: Direction = "sendrecv",
        *,
        codecs: list[Codec] | None = None,
        send_encodings: list[SendEncoding] | None = None,
        stream_id: str | None = None,
        track_id: str | None = None,
    ) -> Transceiver:
        """Add an m-line (negotiated by the next create_offer).

        ``codecs`` restricts/reorders this m-line's codecs; ``send_encodings``
        with several entries makes it a simulcast sender (``a=rid``,
        ``a=simulcast:send``); ``stream_id``/``track_id`` go into a=msid.
        """
        raise NotImplementedError

    def create_data_channel(
        self,
        label: str,
        *,
        ordered: bool = True,
        max_retransmits: int | None = None,
        protocol: str = "",
    ) -> DataChannel:
        """Create a data channel (adds an m=application line if there is none)."""
        raise NotImplementedError

    async def create_offer(self) -> str:
        """Create an offer, set it as the local description and return it.

        Gathers candidates on the first call; they are embedded in the SDP and
        also emitted to ``on_ice_candidate``.
        """
        raise NotImplementedError

    async def create_answer(self) -> str:
        """Create an answer to the remote offer, set it as local description, return it."""
        raise NotImplementedError

    async def set_remote_description(self, sdp: str, type: SdpType) -> None:
        """Apply a remote offer or answer. ValueError on malformed SDP."""
        raise NotImplementedError

    async def add_ice_candidate(self, candidate: IceCandidateInit | None) -> None:
        """Add a remote trickle candidate (None or empty candidate = end of candidates).

        ValueError on a malformed candidate line.
        """
        raise NotImplementedError

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until ``connection_state`` is "connected".

        Raises ConnectionError if it becomes "failed"/"closed" and
        TimeoutError after ``timeout`` seconds.
        """
        raise NotImplementedError

    async def close(self) -> None:
        """Close everything and cancel every task. Idempotent."""
        raise NotImplementedError
