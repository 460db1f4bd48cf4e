"""Single-PeerConnection (``/rtc/v1``) media sections: which of the client's
recvonly m-lines carry which downtrack.

The server cannot add m-lines to a connection the client offers; it sends on
the recvonly m-lines the client offered and asks for more with
``MediaSectionsRequirement``. A downtrack waits here until the next client
offer has a free m-line of its kind.
"""

from __future__ import annotations

from collections.abc import Iterable

from kitewire.transport import Transceiver
from kitewire.transport.sdp import SdpSession

from .downtrack import DownTrack, msid_stream_id

__all__ = ["MediaSections"]


class MediaSections:
    """The m-line bookkeeping of one single-PC participant."""

    def __init__(self) -> None:
        #: Downtracks waiting for an m-line, oldest first.
        self.waiting: list[DownTrack] = []
        # mid -> direction the client offered it with, from its latest offer ("rejected" for port 0).
        self._offered: dict[str, str] = {}
        # Mids that carried a downtrack once: never handed out again. (A client recycling a
        # rejected m-line gives it a new mid, and the transport a new transceiver.)
        self._spent: set[str] = set()
        # Mids released since the client's latest offer: its answer settles them.
        self._released: set[str] = set()

    @property
    def offer_needed(self) -> bool:
        """Whether a client offer is owed: downtracks wait for m-lines, or released ones must go inactive."""
        return bool(self.waiting or self._released)

    def offer_received(self, offer: SdpSession) -> None:
        """Note the directions of the client's new offer (this offer's answer settles released m-lines)."""
        self._offered = {m.mid: "rejected" if m.rejected else (m.direction or "sendrecv") for m in offer.media if m.mid}
        self._released.clear()

    def free(self, transceivers: Iterable[Transceiver], used: set[int]) -> list[Transceiver]:
        """Recvonly m-lines the client offered that carry nothing (``used``: ids of transceivers in use)."""
        return [
            t
            for t in transceivers
            if t.mid is not None
            and not t.stopped
            and id(t) not in used
            and self._offered.get(t.mid) == "recvonly"
            # An m-line that carried a track once is never reused: the client's
            # receiver keeps its track object per m-line, so livekit's SDK would
            # not report the new track (seen with livekit 1.2.1).
            and t.mid not in self._spent
        ]

    def bind_waiting(self, free: list[Transceiver]) -> None:
        """Put waiting downtracks on ``free`` m-lines of their kind (taken from the list)."""
        for down in list(self.waiting):
            section = next((t for t in free if t.kind == down.track.kind), None)
            if section is None:
                continue
            free.remove(section)
            section.direction = "sendonly"
            if section.mid is not None:
                self._spent.add(section.mid)
            section.stream_id = msid_stream_id(down.track, down.subscriber)
            section.track_id = down.track.sid
            down.bind(section)
            self.waiting.remove(down)

    def wanted(self, free: list[Transceiver]) -> dict[str, int]:
        """How many more m-lines of each kind the waiting downtracks need beyond ``free``."""
        wanted = {"audio": 0, "video": 0}
        for down in self.waiting:
            wanted[down.track.kind] += 1
        for section in free:
            if wanted.get(section.kind, 0) > 0:
                wanted[section.kind] -= 1
        return wanted

    def release(self, down: DownTrack) -> None:
        """Stop sending ``down`` (unbound: forget it; bound: its m-line is stopped at the next answer).

        A stopped m-line is answered inactive today; answered with port 0, the
        client would recycle it for its next recvonly m-line (livekit 1.2.1 does:
        tests/server/test_sdk_resubscribe.py), so the session's m-lines stop growing.
        """
        if down in self.waiting:
            self.waiting.remove(down)
        elif down.transceiver is not None:
            down.transceiver.stop()
            if down.transceiver.mid is not None:
                self._released.add(down.transceiver.mid)
