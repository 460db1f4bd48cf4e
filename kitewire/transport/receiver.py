"""The receiving half of a transceiver: hands each packet on, keeps reception statistics, sends feedback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .codecs import Codec, NegotiatedParameters
from .rtcp import SenderReport, build_fir, build_nack, build_pli, build_remb
from .rtp import RtpHeader
from .stats import RecvStats

if TYPE_CHECKING:
    from .transceiver import Transceiver

__all__ = ["RtpReceiver"]

logger = logging.getLogger(__name__)
_MAX_SSRCS_PER_RECEIVER = 64


class RtpReceiver:
    """The receiving half of a :class:`Transceiver`.

    Set ``on_rtp(packet_bytes, header)`` to get every decrypted packet of this
    m-line (a plain function: it runs inside the network read loop);
    ``header.rid`` names the simulcast layer (None if not simulcast).
    ``on_sender_report(sr)`` is called for RTCP SRs of its SSRCs. Receiver
    reports and transport-cc feedback are sent automatically.

    Padding-only packets (``header.payload_offset == header.payload_end``)
    are delivered too: without RTX, libwebrtc sends its bandwidth probes as
    padding on the media SSRC, and they use up sequence numbers.
    """

    def __init__(
        self,
        send: Callable[[bytes | bytearray, bool], bool],
        rtcp_ssrc: int,
        transceiver: Transceiver,
        parameters: NegotiatedParameters,
    ) -> None:
        # send(packet, is_rtcp): SRTP-protect and send now, False if it could not be.
        self._send = send
        self._rtcp_ssrc = rtcp_ssrc
        self._transceiver = transceiver
        self._parameters = parameters
        self.remote_rids: list[str] = []
        self.ssrc_rids: dict[int, str | None] = {}
        self.streams: dict[int, RecvStats] = {}
        self._fir_seq = 0
        self.packets_received = 0
        self.on_rtp: Callable[[bytes, RtpHeader], None] | None = None
        self.on_sender_report: Callable[[SenderReport], object] | None = None

    @property
    def rids(self) -> list[str]:
        """Simulcast rids the remote sends on this m-line (empty if not simulcast)."""
        return list(self.remote_rids)

    @property
    def ssrcs(self) -> dict[int, str | None]:
        """SSRCs seen/announced so far -> their rid (None if not simulcast)."""
        return dict(self.ssrc_rids)

    @property
    def codecs(self) -> list[Codec]:
        """Negotiated codecs with payload types."""
        return list(self._parameters.codecs)

    @property
    def header_extensions(self) -> dict[str, int]:
        """Negotiated header extensions: URI -> id."""
        return dict(self._parameters.extmap)

    def request_keyframe(self, ssrc: int) -> None:
        """Send a PLI for ``ssrc``."""
        self._send(build_pli(self._rtcp_ssrc, ssrc), True)

    def send_fir(self, ssrc: int) -> None:
        """Send a FIR for ``ssrc`` (for peers that ignore PLI)."""
        self._fir_seq = (self._fir_seq + 1) & 0xFF
        self._send(build_fir(self._rtcp_ssrc, ssrc, self._fir_seq), True)

    def send_nack(self, ssrc: int, sequence_numbers: list[int]) -> None:
        """Ask the sender of ``ssrc`` to retransmit these sequence numbers."""
        if sequence_numbers:
            self._send(build_nack(self._rtcp_ssrc, ssrc, sequence_numbers), True)

    def send_remb(self, bitrate: int, ssrcs: list[int] | None = None) -> None:
        """Send a REMB (bits per second) for ``ssrcs`` (default: all seen)."""
        targets = list(self.ssrc_rids) if ssrcs is None else ssrcs
        self._send(build_remb(self._rtcp_ssrc, int(bitrate), targets), True)

    def send_rtcp(self, packet: bytes) -> None:
        """SRTCP-protect and send one (compound) RTCP packet now."""
        self._send(packet, True)

    def deliver(self, data: bytes, header: RtpHeader, arrival: float) -> None:
        self.packets_received += 1
        stats = self.streams.get(header.ssrc)
        if stats is None:
            if len(self.streams) >= _MAX_SSRCS_PER_RECEIVER:
                return
            clock = self._clock_rate_for(header.payload_type)
            stats = self.streams[header.ssrc] = RecvStats(header.sequence_number, clock)
            self.ssrc_rids.setdefault(header.ssrc, header.rid)
        stats.update(header.sequence_number, header.timestamp, arrival)
        callback = self.on_rtp
        if callback is not None:
            try:
                callback(data, header)
            except Exception:
                logger.exception("on_rtp callback failed")

    def _clock_rate_for(self, payload_type: int) -> int:
        for codec in self._parameters.codecs:
            if codec.payload_type == payload_type:
                return codec.clock_rate
        return 90000 if self._transceiver.kind == "video" else 48000
