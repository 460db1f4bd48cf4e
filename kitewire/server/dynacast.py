"""Dynacast: tell a publisher which layers of a video track anyone watches.

A subscriber's downtrack wants a layer (``UpdateTrackSettings``: a quality or a
size; ``disabled`` wants none). The best layer any subscriber wants is the
track's subscribed quality; a publisher that joined with ``dynacast`` stops
encoding the layers above it, and all of them when it is OFF, when the server
says so in a ``SubscribedQualityUpdate``. A rise is sent at once (somebody is
waiting for those pixels); a fall only once it has held for
``downgrade_delay`` seconds (livekit-server's ``dynacast_pause_delay``, 5 s),
so a subscriber flicking between sizes does not make the encoder restart
layers over and over.

Works on numbers; ``live_signals`` reads the downtracks and sends the update.
"""

from __future__ import annotations

from collections.abc import Iterable

from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc

__all__ = ["OFF", "DynacastQuality", "subscribed_quality_update"]

#: No layer wanted (``VideoQuality.OFF``).
OFF = pb_models.OFF
_QUALITIES = (pb_models.LOW, pb_models.MEDIUM, pb_models.HIGH)
_DEFAULT_DOWNGRADE_DELAY = 5.0


def _rank(quality: int) -> int:
    """Order of qualities: OFF below LOW (OFF is 3 in the enum)."""
    return -1 if quality == OFF else quality


class DynacastQuality:
    """One video track's subscribed quality: what was announced and what is wanted."""

    def __init__(self, downgrade_delay: float = _DEFAULT_DOWNGRADE_DELAY) -> None:
        if not downgrade_delay >= 0:
            raise ValueError(f"DynacastQuality: expected a downgrade delay >= 0 seconds, got {downgrade_delay}")
        self.downgrade_delay = downgrade_delay
        # A publisher starts with every layer on: that is what it was told last.
        self.announced: int = pb_models.HIGH
        self._lower_since: float | None = None

    @staticmethod
    def wanted(layers: Iterable[int | None]) -> int:
        """The best of the subscribers' wanted layers (0..2; None: that one wants nothing), OFF when none."""
        best = OFF
        for layer in layers:
            if layer is not None and _rank(layer) > _rank(best):
                best = _QUALITIES[max(0, min(2, layer))]
        return best

    def update(self, wanted: int, now: float) -> int | None:
        """The quality to announce now for subscribers wanting ``wanted``, or None to announce nothing."""
        if wanted == self.announced:
            self._lower_since = None
            return None
        if _rank(wanted) > _rank(self.announced):
            self._lower_since = None
            self.announced = wanted
            return wanted
        if self._lower_since is None:
            self._lower_since = now
        if now - self._lower_since < self.downgrade_delay:
            return None
        self._lower_since = None
        self.announced = wanted
        return wanted


def subscribed_quality_update(track_sid: str, codec_mime: str, quality: int) -> pb_rtc.SignalResponse:
    """The SubscribedQualityUpdate enabling every layer up to ``quality`` (none for OFF).

    The qualities go both in the legacy list and per codec; the codec is named as the
    SDKs name it in their publish options ("vp8", not "video/VP8"), which is what
    livekit-client and the Rust SDK match against.
    """
    response = pb_rtc.SignalResponse()
    update = response.subscribed_quality_update
    update.track_sid = track_sid
    enabled = [q for q in _QUALITIES if quality != OFF and q <= quality]
    qualities = [pb_rtc.SubscribedQuality(quality=q, enabled=q in enabled) for q in _QUALITIES]
    update.subscribed_qualities.extend(qualities)
    codec = update.subscribed_codecs.add()
    codec.codec = codec_mime.split("/", 1)[-1].lower()
    codec.qualities.extend(qualities)
    return response
