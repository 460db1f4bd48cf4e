"""A transceiver: one m-line with its sender and receiver."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Literal

from .codecs import Codec, MediaKind, NegotiatedParameters
from .receiver import RtpReceiver
from .sender import RtpSender, SendEncoding, random_ssrc

__all__ = ["Direction", "Transceiver"]

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]


class Transceiver:
    """One m-line: its mid, kind, direction and a sender/receiver pair.

    ``direction`` is our side's wish (may be changed before the next offer or
    answer); ``current_direction`` is what was negotiated. ``codecs`` and
    ``header_extensions`` are the negotiated values (the offered ones between
    our offer and the answer; empty before). ``remote_stream_id`` /
    ``remote_track_id`` come from the remote a=msid.
    """

    def __init__(
        self,
        send: Callable[[bytes | bytearray, bool], bool],
        rtcp_ssrc: int,
        kind: MediaKind,
        direction: Direction,
        *,
        codecs: list[Codec] | None,
        send_encodings: list[SendEncoding] | None,
        stream_id: str | None,
        track_id: str | None,
    ) -> None:
        self.mid: str | None = None
        self.kind: MediaKind = kind
        self.direction: Direction = direction
        self.current_direction: Direction | None = None
        self.stream_id = stream_id or f"stream-{secrets.token_hex(4)}"
        self.track_id = track_id or f"track-{secrets.token_hex(4)}"
        self.remote_stream_id: str | None = None
        self.remote_track_id: str | None = None
        #: The codecs this m-line offers/accepts, in order (None: the configuration's for its kind).
        self.preferred_codecs = codecs
        #: Codec names (lower case) an answer lists first, in this order, whatever order the offer had.
        self.answer_codec_order: tuple[str, ...] = ()
        #: The negotiated codecs and header extensions (shared with the sender and receiver).
        self.parameters = NegotiatedParameters()
        self._stopped = False
        #: Whether ``on_track`` was fired for the current receiving period.
        self.track_fired = False
        #: Whether the remote description says the remote sends on this m-line.
        self.remote_sends = False
        #: Whether both sides hold a description rejecting this m-line (it can be recycled).
        self.rejected_negotiated = False
        encodings = send_encodings or [SendEncoding("", random_ssrc())]
        self.sender = RtpSender(send, self, self.parameters, encodings)
        self.receiver = RtpReceiver(send, rtcp_ssrc, self, self.parameters)

    @property
    def codecs(self) -> list[Codec]:
        """Negotiated codecs with payload types, preferred first."""
        return list(self.parameters.codecs)

    @property
    def header_extensions(self) -> dict[str, int]:
        """Negotiated header extensions: URI -> id."""
        return dict(self.parameters.extmap)

    @property
    def stopped(self) -> bool:
        """True after :meth:`stop` or after the remote rejected the m-line."""
        return self._stopped

    def stop(self) -> None:
        """Stop this transceiver; the next offer/answer sets its m-line to port 0."""
        self._stopped = True
        self.direction = "inactive"

    def mark_rejected(self) -> None:
        """The m-line was rejected (port 0) by an offer/answer both sides hold."""
        self._stopped = True
        self.rejected_negotiated = True
        self.current_direction = None
        self.remote_sends = False

    def sends(self) -> bool:
        """Whether we want to send on this m-line (not stopped, direction sendrecv/sendonly)."""
        return not self._stopped and self.direction in ("sendrecv", "sendonly")

    def receives(self) -> bool:
        """Whether we want to receive on this m-line (not stopped, direction sendrecv/recvonly)."""
        return not self._stopped and self.direction in ("sendrecv", "recvonly")

    def __repr__(self) -> str:
        return f"Transceiver(mid={self.mid!r}, kind={self.kind}, direction={self.direction})"
