"""dynacast.py on numbers: rises at once, falls after the delay, and the update's shape."""

from __future__ import annotations

import pytest
from kitewire.server.dynacast import OFF, DynacastQuality, subscribed_quality_update
from livekit.protocol import models as pb_models


def test_wanted_is_the_best_layer_any_subscriber_wants() -> None:
    assert DynacastQuality.wanted([]) == OFF
    assert DynacastQuality.wanted([None, None]) == OFF
    assert DynacastQuality.wanted([0, None, 1]) == pb_models.MEDIUM
    assert DynacastQuality.wanted([2, 0]) == pb_models.HIGH
    assert DynacastQuality.wanted([7, -3]) == pb_models.HIGH  # out-of-range layers are clamped


def test_rises_at_once_falls_after_holding() -> None:
    quality = DynacastQuality(downgrade_delay=5.0)
    assert quality.update(pb_models.HIGH, 0.0) is None  # a publisher starts with everything on
    assert quality.update(pb_models.LOW, 1.0) is None
    assert quality.update(pb_models.LOW, 5.9) is None
    assert quality.update(pb_models.LOW, 6.0) == pb_models.LOW
    assert quality.update(pb_models.MEDIUM, 6.1) == pb_models.MEDIUM
    # A fall that does not hold starts the wait again.
    assert quality.update(OFF, 7.0) is None
    assert quality.update(pb_models.MEDIUM, 8.0) is None
    assert quality.update(OFF, 9.0) is None
    assert quality.update(OFF, 13.9) is None
    assert quality.update(OFF, 14.0) == OFF
    assert quality.update(pb_models.LOW, 14.1) == pb_models.LOW
    with pytest.raises(ValueError, match="downgrade delay"):
        DynacastQuality(downgrade_delay=-1)


def test_update_enables_the_layers_up_to_the_quality() -> None:
    update = subscribed_quality_update("TR_x", "video/VP8", pb_models.MEDIUM).subscribed_quality_update
    assert update.track_sid == "TR_x"
    expected = [(pb_models.LOW, True), (pb_models.MEDIUM, True), (pb_models.HIGH, False)]
    assert [(q.quality, q.enabled) for q in update.subscribed_qualities] == expected
    assert [c.codec for c in update.subscribed_codecs] == ["vp8"]
    assert [(q.quality, q.enabled) for q in update.subscribed_codecs[0].qualities] == expected
    off = subscribed_quality_update("TR_x", "video/AV1", OFF).subscribed_quality_update
    assert not any(q.enabled for q in off.subscribed_qualities)
    assert off.subscribed_codecs[0].codec == "av1"
