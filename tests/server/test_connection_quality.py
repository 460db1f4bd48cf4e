"""connection_quality.py on numbers: interval loss from cumulative counters, jitter, the worst stream."""

from __future__ import annotations

from kitewire.server.connection_quality import DownlinkSample, QualityMeter, UplinkSample, rate
from livekit.protocol import models as pb_models


def test_rating_thresholds() -> None:
    assert rate(0.0, 0.0)[0] == pb_models.EXCELLENT
    assert rate(0.019, 0.029)[0] == pb_models.EXCELLENT
    assert rate(0.03, 0.0)[0] == pb_models.GOOD
    assert rate(0.0, 0.05)[0] == pb_models.GOOD
    assert rate(0.10, 0.0)[0] == pb_models.POOR
    assert rate(0.0, 0.2)[0] == pb_models.POOR
    # Scores fall with loss and stay within 1..5 whatever comes in.
    assert rate(0.0, 0.0)[1] > rate(0.05, 0.0)[1] > rate(0.5, 0.0)[1] == 1.0
    assert rate(-3.0, -1.0) == rate(0.0, 0.0)
    assert rate(7.0, 99.0)[1] == 1.0


def test_loss_is_measured_per_interval() -> None:
    meter = QualityMeter()
    # The first look only sets where counting starts.
    assert meter.measure([UplinkSample("a", 1000, 500, 0.0)], []) == (pb_models.EXCELLENT, 5.0)
    assert meter.measure([UplinkSample("a", 1100, 600, 0.0)], [])[0] == pb_models.EXCELLENT
    assert meter.measure([UplinkSample("a", 1200, 680, 0.0)], [])[0] == pb_models.POOR  # 20 % of 100
    # Retransmissions can make more arrive than expected: zero loss, not a negative one.
    assert meter.measure([UplinkSample("a", 1300, 800, 0.0)], [])[0] == pb_models.EXCELLENT
    # Too few packets to judge (a paused layer) gives no evidence.
    assert meter.measure([UplinkSample("a", 1305, 800, 0.0)], [])[0] == pb_models.EXCELLENT


def test_the_worst_stream_decides() -> None:
    meter = QualityMeter()
    clean, jittery = UplinkSample("a", 100, 100, 0.0), UplinkSample("b", 100, 100, 0.05)
    meter.measure([clean, jittery], [DownlinkSample("d", 0, 0.0)])
    quality, _ = meter.measure(
        [UplinkSample("a", 200, 200, 0.0), UplinkSample("b", 200, 200, 0.05)], [DownlinkSample("d", 100, 0.0)]
    )
    assert quality == pb_models.GOOD
    # The subscriber reports 30 % lost on a stream that carried media.
    quality, _ = meter.measure([UplinkSample("a", 300, 300, 0.0)], [DownlinkSample("d", 200, 0.3)])
    assert quality == pb_models.POOR
    # The same report again, with nothing sent since, is stale: no evidence.
    quality, _ = meter.measure([UplinkSample("a", 400, 400, 0.0)], [DownlinkSample("d", 200, 0.3)])
    assert quality == pb_models.EXCELLENT


def test_streams_kept_are_bounded() -> None:
    meter = QualityMeter()
    for round_ in range(3):
        meter.measure((UplinkSample(i, 100 * round_, 100 * round_, 0.0) for i in range(10_000)), [])
    assert len(meter._previous) <= 64
