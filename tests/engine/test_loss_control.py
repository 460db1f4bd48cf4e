"""LossRateController: a published layer's bitrate and picture size follow the loss its receiver reports."""

from __future__ import annotations

import pytest
from kitewire.engine._loss_control import EVALUATION_INTERVAL, LossRateController, scaled_size

MAX_BITRATE = 2_000_000


def run_windows(
    control: LossRateController, windows: int, *, loss: float, start: float = 0.0, packets: int = 100
) -> float:
    """Feed ``windows`` evaluation windows of ``packets`` each, a share ``loss`` of them NACKed; the end time."""
    now = start
    sequence = int(start * 10_000)
    for _ in range(windows):
        control.on_packets_sent(packets)
        lost = round(packets * loss)
        control.on_nack(list(range(sequence, sequence + lost)))
        control.on_nack(list(range(sequence, sequence + lost)))  # a repeated NACK counts once
        sequence += packets
        now += EVALUATION_INTERVAL
        control.update(now)
    return now


def test_no_loss_keeps_the_full_bitrate_and_size() -> None:
    control = LossRateController(MAX_BITRATE, now=0.0)
    run_windows(control, 20, loss=0.0)
    assert control.bitrate == MAX_BITRATE
    assert control.scale == 1.0


def test_one_window_of_heavy_loss_among_light_ones_does_not_cut() -> None:
    control = LossRateController(MAX_BITRATE, now=0.0)
    now = run_windows(control, 6, loss=0.05)
    now = run_windows(control, 1, loss=0.14, start=now)
    run_windows(control, 6, loss=0.05, start=now)
    assert control.bitrate == MAX_BITRATE
    assert control.scale == 1.0


def test_moderate_loss_is_held_without_a_cut() -> None:
    control = LossRateController(MAX_BITRATE, now=0.0)
    run_windows(control, 20, loss=0.05)
    assert control.bitrate == MAX_BITRATE
    assert control.scale == 1.0


def test_heavy_loss_cuts_bitrate_and_picture_size_within_a_few_seconds() -> None:
    control = LossRateController(MAX_BITRATE, now=0.0)
    run_windows(control, 10, loss=0.2)  # five seconds
    assert control.loss == pytest.approx(0.2, abs=0.01)
    assert control.bitrate <= MAX_BITRATE * 0.25
    assert control.scale <= 0.5
    assert control.bitrate >= control.min_bitrate


def test_pictures_do_not_shrink_below_320x180_pixels() -> None:
    vga = LossRateController(MAX_BITRATE, now=0.0, pixels=640 * 480)
    hd = LossRateController(MAX_BITRATE, now=0.0, pixels=1280 * 720)
    tiny = LossRateController(MAX_BITRATE, now=0.0, pixels=160 * 120)
    for control in (vga, hd, tiny):
        run_windows(control, 100, loss=0.4)
    assert vga.scale == 0.5  # 320x240
    assert hd.scale == 0.25  # 320x180
    assert tiny.scale == 1.0  # already below the floor: kept as it is
    assert tiny.bitrate == tiny.min_bitrate  # the bitrate still goes down


def test_the_cut_stops_at_the_minimum_bitrate() -> None:
    control = LossRateController(MAX_BITRATE, now=0.0)
    run_windows(control, 100, loss=0.4)
    assert control.bitrate == control.min_bitrate
    assert control.min_bitrate > 0


def test_once_loss_is_gone_bitrate_and_size_come_back_slowly() -> None:
    control = LossRateController(MAX_BITRATE, now=0.0)
    now = run_windows(control, 30, loss=0.2)
    low, low_scale = control.bitrate, control.scale
    now = run_windows(control, 4, loss=0.0, start=now)
    assert low < control.bitrate < MAX_BITRATE / 2  # rising, not jumping back
    run_windows(control, 200, loss=0.0, start=now)
    assert control.bitrate == MAX_BITRATE
    assert control.scale == 1.0 > low_scale


def test_receiver_reports_count_when_nothing_is_nacked() -> None:
    control = LossRateController(MAX_BITRATE, now=0.0)
    now = 0.0
    for _ in range(6):
        control.on_packets_sent(100)
        control.on_report(0.3)
        now += EVALUATION_INTERVAL
        control.update(now)
    assert control.loss == pytest.approx(0.3, abs=0.02)
    assert control.bitrate < MAX_BITRATE / 2


def test_decisions_come_at_most_once_per_window_and_only_on_change() -> None:
    control = LossRateController(MAX_BITRATE, now=0.0)
    control.on_packets_sent(100)
    assert control.update(EVALUATION_INTERVAL) is None  # no loss at the full bitrate: nothing changes
    control.on_packets_sent(100)
    control.on_nack(list(range(40)))
    assert control.update(EVALUATION_INTERVAL * 1.5) is None  # the window is not over yet
    decision = control.update(EVALUATION_INTERVAL * 2)
    assert decision is not None
    assert decision.bitrate < MAX_BITRATE


def test_a_quiet_window_decides_nothing() -> None:
    control = LossRateController(MAX_BITRATE, now=0.0)
    control.on_packets_sent(3)
    control.on_nack([1, 2])
    assert control.update(1.0) is None
    assert control.bitrate == MAX_BITRATE


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bitrate"):
        LossRateController(0, now=0.0)
    with pytest.raises(ValueError, match="pixels"):
        LossRateController(MAX_BITRATE, now=0.0, pixels=-1)
    control = LossRateController(MAX_BITRATE, now=0.0)
    with pytest.raises(ValueError, match="fraction_lost"):
        control.on_report(1.5)
    with pytest.raises(ValueError, match="scale"):
        scaled_size(640, 480, 0.0)


def test_keyframes_go_twice_on_a_lossy_path_and_every_frame_once_heavy_loss_cut_the_rate() -> None:
    control = LossRateController(MAX_BITRATE, now=0.0)
    assert not control.protects(keyframe=True)  # no loss seen
    now = run_windows(control, 10, loss=0.05)
    assert control.protects(keyframe=True)
    assert not control.protects(keyframe=False)  # light loss: the full rate, NACKs repair it
    now = run_windows(control, 20, loss=0.2, start=now)
    assert control.protects(keyframe=False)
    now = run_windows(control, 10, loss=0.04, start=now)  # what the copies leave of the loss
    assert control.protects(keyframe=False)
    run_windows(control, 10, loss=0.0, start=now)
    assert not control.protects(keyframe=False) and not control.protects(keyframe=True)


def test_scaled_sizes_are_even_and_never_above_the_layer_size() -> None:
    assert scaled_size(1280, 720, 1.0) == (1280, 720)
    assert scaled_size(1280, 720, 0.375) == (480, 270)
    assert scaled_size(641, 479, 0.5) == (320, 238)
    assert scaled_size(20, 20, 0.25) == (16, 16)
