"""PacketHistory bounds and livekit's simulcast layer plan."""

from __future__ import annotations

import pytest
from kitewire.media import (
    PacketHistory,
    VideoLayerPlan,
    default_video_preset,
    plan_video_layers,
)
from kitewire.media.simulcast import (
    JS_VIDEO_PRESETS,
    QUALITY_HIGH,
    QUALITY_LOW,
    QUALITY_MEDIUM,
    VIDEO_PRESETS,
)

# -- PacketHistory --------------------------------------------------------------


def test_history_is_bounded_by_count() -> None:
    history = PacketHistory(max_packets=100, max_age=10.0)
    assert history.max_packets == 128  # rounded up to a power of two, which divides the sequence space
    for seq in range(65_500, 65_500 + 300):
        history.add(seq & 0xFFFF, bytes([seq & 0xFF]), 0.0)
    assert len(history) == 128
    newest = (65_500 + 299) & 0xFFFF
    assert history.get(newest, 0.0) == bytes([(65_500 + 299) & 0xFF])
    assert history.get((newest - 127) & 0xFFFF, 0.0) is not None
    assert history.get((newest - 128) & 0xFFFF, 0.0) is None


def test_history_is_bounded_by_age() -> None:
    history = PacketHistory(max_packets=1000, max_age=1.0)
    for seq in range(100):
        history.add(seq, b"x", seq * 0.1)  # one packet every 100 ms
    assert history.get(99, 9.9) == b"x"
    assert history.get(89, 9.9) == b"x"
    assert history.get(88, 9.9) is None  # 1.1 s old
    assert history.get(99, 11.0) is None
    assert history.get_many([99, 98], 11.0) == []


def test_history_get_many_keeps_request_order_and_skips_unknown() -> None:
    history = PacketHistory()
    for seq in (65_534, 65_535, 0, 1):
        history.add(seq, seq.to_bytes(2, "big"), 5.0)
    assert history.get_many([1, 65_535, 7, 65_534], 5.5) == [
        (1, b"\x00\x01"),
        (65_535, b"\xff\xff"),
        (65_534, b"\xff\xfe"),
    ]
    history.add(1, b"again", 5.6)  # a seq reused after a wrap replaces the old entry
    assert history.get(1, 5.6) == b"again" and len(history) == 4
    history.clear()
    assert len(history) == 0


def test_history_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_packets"):
        PacketHistory(max_packets=0)
    with pytest.raises(ValueError, match="max_age"):
        PacketHistory(max_age=0)
    with pytest.raises(ValueError, match="seq"):
        PacketHistory().add(65_536, b"", 0.0)


# -- simulcast -----------------------------------------------------------------


def summary(layers: list[VideoLayerPlan]) -> list[tuple[str, int, int, int, int, float]]:
    return [
        (layer.rid, layer.quality, layer.width, layer.height, layer.max_bitrate, layer.max_framerate)
        for layer in layers
    ]


def test_720p_simulcast_matches_livekit_rust_sdk() -> None:
    # rust-sdks livekit/src/room/options.rs: compute_video_encodings with the
    # default TrackPublishOptions (simulcast) picks DEFAULT_SIMULCAST_PRESETS
    # [H180, H360] under the top layer; compute_appropriate_encoding returns the
    # first preset wider than 1280, H1080 (3 Mbps, 30 fps).
    assert summary(plan_video_layers(1280, 720)) == [
        ("q", QUALITY_LOW, 320, 180, 160_000, 15.0),
        ("h", QUALITY_MEDIUM, 640, 360, 450_000, 20.0),
        ("f", QUALITY_HIGH, 1280, 720, 3_000_000, 30.0),
    ]
    assert [layer.scale_resolution_down_by for layer in plan_video_layers(1280, 720)] == [4.0, 2.0, 1.0]


def test_720p_simulcast_matches_livekit_js_sdk() -> None:
    # client-sdk-js 2.21 publishUtils.ts: determineAppropriateEncoding stops at
    # the first preset at least as wide (h720: 1.7 Mbps, 30 fps); the layers
    # under it are defaultSimulcastPresets169 = [h180, h360] (20 fps in 2.21).
    assert summary(plan_video_layers(1280, 720, sdk="js")) == [
        ("q", QUALITY_LOW, 320, 180, 160_000, 20.0),
        ("h", QUALITY_MEDIUM, 640, 360, 450_000, 20.0),
        ("f", QUALITY_HIGH, 1280, 720, 1_700_000, 30.0),
    ]


def test_480p_simulcast_has_two_layers() -> None:
    # 4:3, longer side 640 (480..959): two layers. rust: video43 H360 (480x360,
    # 225 kbps, 20 fps) under the top layer, which gets video43 H540's encoding
    # (450 kbps, 25 fps). JS 2.21: VideoPresets43.h180 (240x180, 125 kbps,
    # 20 fps) under h480's encoding (500 kbps, 20 fps).
    assert summary(plan_video_layers(640, 480)) == [
        ("q", QUALITY_LOW, 480, 360, 225_000, 20.0),
        ("h", QUALITY_MEDIUM, 640, 480, 450_000, 25.0),
    ]
    assert summary(plan_video_layers(640, 480, sdk="js")) == [
        ("q", QUALITY_LOW, 240, 180, 125_000, 20.0),
        ("h", QUALITY_MEDIUM, 640, 480, 500_000, 20.0),
    ]


def test_small_portrait_and_non_simulcast_plans() -> None:
    assert summary(plan_video_layers(320, 240)) == [("q", QUALITY_LOW, 320, 240, 225_000, 20.0)]
    portrait = plan_video_layers(720, 1280)
    assert [(layer.width, layer.height) for layer in portrait] == [(180, 320), (360, 640), (720, 1280)]
    single = plan_video_layers(1280, 720, simulcast=False, max_bitrate=2_000_000, max_framerate=24)
    assert summary(single) == [("q", QUALITY_LOW, 1280, 720, 2_000_000, 24.0)]
    # JS without simulcast: one encoding with no rid, at the JS default preset
    # for the size (never a zero bitrate or framerate).
    js_single = plan_video_layers(1280, 720, simulcast=False, sdk="js")
    assert summary(js_single) == [("", QUALITY_HIGH, 1280, 720, 1_700_000, 30.0)]
    for width, height in ((1280, 720), (640, 480), (320, 180), (1920, 1080), (960, 720)):
        preset = default_video_preset(width, height, sdk="js")
        (plan,) = plan_video_layers(width, height, simulcast=False, sdk="js")
        assert (plan.max_bitrate, plan.max_framerate) == (preset.max_bitrate, preset.max_framerate)
        assert plan.max_bitrate > 0 and plan.max_framerate > 0
    js_slow = plan_video_layers(1280, 720, simulcast=False, max_framerate=15, sdk="js")
    assert summary(js_slow) == [("", QUALITY_HIGH, 1280, 720, 1_700_000, 15.0)]
    js_capped = plan_video_layers(1280, 720, simulcast=False, max_bitrate=900_000, sdk="js")
    assert summary(js_capped) == [("", QUALITY_HIGH, 1280, 720, 900_000, 30.0)]
    # JS rounds layer sizes up where rust truncates.
    js_low, rust_low = plan_video_layers(1000, 562, sdk="js")[0], plan_video_layers(1000, 562)[0]
    assert (js_low.width, js_low.height) == (321, 180)
    assert (rust_low.width, rust_low.height) == (320, 180)
    # A caller's cap applies to the top layer only; lower layers keep their defaults.
    capped = plan_video_layers(1920, 1080, max_bitrate=1_000_000)
    assert [layer.max_bitrate for layer in capped] == [160_000, 450_000, 1_000_000]


def test_default_presets_and_proto_layer() -> None:
    assert default_video_preset(1280, 720, sdk="js") == JS_VIDEO_PRESETS["h720"]
    assert default_video_preset(960, 720, sdk="js") == JS_VIDEO_PRESETS["h720_43"]
    rust_960 = default_video_preset(960, 720)
    assert (rust_960.max_bitrate, rust_960.max_framerate) == (2_500_000, 30.0)  # h1080_43's encoding
    assert default_video_preset(100, 100).max_bitrate == VIDEO_PRESETS["h120_43"].max_bitrate
    from livekit.protocol import models

    layer = plan_video_layers(1280, 720)[1].to_proto(ssrc=4242)
    assert isinstance(layer, models.VideoLayer)
    assert (layer.quality, layer.width, layer.height, layer.bitrate, layer.ssrc, layer.rid) == (
        models.VideoQuality.MEDIUM,
        640,
        360,
        450_000,
        4242,
        "h",
    )


def test_simulcast_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="width"):
        plan_video_layers(0, 720)
    with pytest.raises(ValueError, match="max_bitrate"):
        plan_video_layers(1280, 720, max_bitrate=-1)
    with pytest.raises(ValueError, match="sdk"):
        plan_video_layers(1280, 720, sdk="go")  # type: ignore[arg-type]
