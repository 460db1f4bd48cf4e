"""Loss-driven rate control of one published video layer.

Under packet loss a frame is lost when any one of its packets is, so big frames
are lost almost every time: at 20 % loss a 720p frame of seven packets arrives
whole about once in five. The publisher therefore lowers the layer's bitrate,
and with it the picture size, while loss stays high, and raises them again
slowly once it is gone, the way libwebrtc's loss-based control does (decrease
above 10 % loss, hold between 2 % and 10 %, increase below 2 %).

Loss is measured two ways and the larger one counts: the share of sent packets
the remote NACKed (what the receiver saw missing, before retransmission), and
the fraction lost in its RTCP receiver reports (after retransmissions; it is the
only signal from a receiver that does not NACK).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: seconds of traffic one loss figure covers
EVALUATION_INTERVAL = 0.5
#: loss above which the bitrate goes down, and below which it may go up again
HIGH_LOSS = 0.10
LOW_LOSS = 0.02
#: growth per evaluation while loss is low (libwebrtc: 8 % a second)
_GROWTH = 1.04
#: a window with fewer packets says too little about loss to act on
_MIN_PACKETS = 20
#: picture scales, largest first; the layer's size times one of these is encoded
SCALES = (1.0, 0.75, 0.5, 0.375, 0.25)
#: a scale is used while the bitrate is at least this share of the layer's
#: maximum times the scale's area share: the full size is kept down to 60 % of
#: the maximum, a half-size picture down to 15 %
_SCALE_HEADROOM = 0.6
#: weight of the newest window in the loss figure (one noisy window alone does not cut)
_LOSS_GAIN = 0.5
#: pictures are not made smaller than this many pixels (libwebrtc's floor too: 320x180)
MIN_PIXELS = 320 * 180
#: after the loss figure shrinks the bitrate to this share of the maximum, no lower
MIN_BITRATE_SHARE = 0.05
_MIN_BITRATE = 30_000


@dataclass(frozen=True)
class RateDecision:
    """What the layer should encode with from now on."""

    bitrate: int
    scale: float


class LossRateController:
    """Target bitrate and picture scale of one layer, from the loss its receiver reports.

    ``pixels`` (the layer's width x height) keeps the picture from shrinking
    below :data:`MIN_PIXELS`.

    Feed it :meth:`on_packets_sent`, :meth:`on_nack` and :meth:`on_report`;
    :meth:`update` returns a new :class:`RateDecision` when one is due (at most
    once per :data:`EVALUATION_INTERVAL`), else None. Times are seconds on one
    monotonic clock.
    """

    def __init__(self, max_bitrate: int, *, now: float, pixels: int = 0) -> None:
        if not isinstance(max_bitrate, int) or max_bitrate <= 0:
            raise ValueError(f"max_bitrate: expected a positive int (bps), got {max_bitrate!r}")
        if not isinstance(pixels, int) or pixels < 0:
            raise ValueError(f"pixels: expected the layer's width x height (0: any scale), got {pixels!r}")
        # the smallest scale that keeps the picture at MIN_PIXELS or more
        self._scales = tuple(
            scale for scale in SCALES if scale == 1.0 or not pixels or pixels * scale * scale >= MIN_PIXELS
        )
        self.max_bitrate = max_bitrate
        self.min_bitrate = min(max_bitrate, max(_MIN_BITRATE, int(max_bitrate * MIN_BITRATE_SHARE)))
        self.bitrate = float(max_bitrate)
        self.scale = 1.0
        self.loss = 0.0
        """The loss figure (0..1): the windows' loss, smoothed."""
        self._window_start = now
        self._sent = 0
        self._nacked: set[int] = set()
        self._reported_loss: float | None = None

    def on_packets_sent(self, count: int) -> None:
        """``count`` new (not retransmitted) packets went out."""
        self._sent += count

    def on_nack(self, sequence_numbers: list[int]) -> None:
        """The receiver asked for these packets again (a repeated NACK counts once)."""
        self._nacked.update(sequence_numbers)

    def on_report(self, fraction_lost: float) -> None:
        """An RTCP receiver report's fraction lost (0..1) about this layer."""
        if not 0.0 <= fraction_lost <= 1.0:
            raise ValueError(f"fraction_lost: expected 0..1, got {fraction_lost!r}")
        previous = self._reported_loss
        self._reported_loss = fraction_lost if previous is None else max(previous, fraction_lost)

    def update(self, now: float) -> RateDecision | None:
        """A new decision when a window is complete and it changes something, else None."""
        if now - self._window_start < EVALUATION_INTERVAL:
            return None
        sent, nacked, reported = self._sent, len(self._nacked), self._reported_loss
        self._window_start = now
        self._sent = 0
        self._nacked = set()
        self._reported_loss = None
        if sent < _MIN_PACKETS and reported is None:
            return None
        nack_loss = min(1.0, nacked / sent) if sent >= _MIN_PACKETS else 0.0
        self.loss += _LOSS_GAIN * (max(nack_loss, reported or 0.0) - self.loss)
        loss = self.loss
        before = (int(self.bitrate), self.scale)
        if loss > HIGH_LOSS:
            # cut in proportion to the loss: at 20 % the rate falls to a fifth in
            # about four seconds
            self.bitrate = max(float(self.min_bitrate), self.bitrate * (1.0 - min(loss, 0.5)))
        elif loss < LOW_LOSS:
            self.bitrate = min(float(self.max_bitrate), self.bitrate * _GROWTH)
        self.scale = self._scale_for(self.bitrate)
        if (int(self.bitrate), self.scale) == before:
            return None
        return RateDecision(int(self.bitrate), self.scale)

    def protects(self, keyframe: bool) -> bool:
        """Whether a frame's packets should go out twice.

        Keyframes on any lossy path (every receiver that lost something waits
        for one). Every frame on a lossy path once heavy loss has cut the
        bitrate to a quarter of the maximum or less: the copies then keep the
        layer at half its maximum rate at most, so this adds no load a
        congested path had not carried before the cut. The copies hide most
        of the loss from the receiver's NACKs, so they stay on until the loss
        seen is low, not merely below the cutting threshold.
        """
        if self.loss <= LOW_LOSS:
            return False
        return keyframe or self.bitrate * 4 <= self.max_bitrate

    def _scale_for(self, bitrate: float) -> float:
        share = bitrate / self.max_bitrate
        for scale in self._scales:
            if share >= scale * scale * _SCALE_HEADROOM:
                # hysteresis: go back up a step only with room to spare (the full
                # size once the bitrate is back at the maximum)
                if scale > self.scale and share < min(1.0, scale * scale * _SCALE_HEADROOM * 1.2):
                    return self.scale
                return scale
        return self._scales[-1]


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """``width`` x ``height`` times ``scale``, rounded down to even sizes of at least 16 pixels."""
    if not 0.0 < scale <= 1.0 or math.isnan(scale):
        raise ValueError(f"scale: expected 0 < scale <= 1, got {scale!r}")
    scaled_width = max(16, int(width * scale) & ~1)
    scaled_height = max(16, int(height * scale) & ~1)
    return min(scaled_width, width), min(scaled_height, height)
