"""kitewire.rtc offers livekit.rtc's audio API: same classes, members and argument names."""

from __future__ import annotations

import inspect

import pytest
from kitewire import rtc
from livekit import rtc as livekit_rtc

AUDIO_CLASSES = [
    "AudioFrame",
    "AudioSource",
    "AudioStream",
    "AudioFrameEvent",
    "AudioResampler",
    "AudioMixer",
    "AVSynchronizer",
    "LocalAudioTrack",
    "RemoteAudioTrack",
    "NoiseCancellationOptions",
]
# members of livekit's audio classes that are not kitewire's: FFI plumbing and stats
NOT_OURS = {"get_stats"}
# livekit's AudioTrack is a typing Union of the two; ours a base class of both
AUDIO_NAMES = [
    *AUDIO_CLASSES,
    "AudioTrack",
    "AudioResamplerQuality",
    "combine_audio_frames",
    "AudioFilter",
    "MediaDevices",
]


@pytest.mark.parametrize("name", AUDIO_CLASSES)
def test_audio_class_members_and_signatures_match(name: str) -> None:
    theirs, ours = getattr(livekit_rtc, name), getattr(rtc, name)
    their_members = {m for m in dir(theirs) if not m.startswith("_")} - NOT_OURS
    our_members = {m for m in dir(ours) if not m.startswith("_")}
    assert sorted(their_members - our_members) == []
    for member in sorted(their_members):
        their_attr, our_attr = getattr(theirs, member), getattr(ours, member)
        if not callable(their_attr) or isinstance(their_attr, type):
            continue
        try:
            their_params = list(inspect.signature(their_attr).parameters)
        except (TypeError, ValueError):
            continue
        ours_params = list(inspect.signature(our_attr).parameters)
        assert ours_params[: len(their_params)] == their_params, f"{name}.{member}"


@pytest.mark.parametrize("name", AUDIO_NAMES)
def test_audio_names_exist(name: str) -> None:
    assert hasattr(livekit_rtc, name) and hasattr(rtc, name) and name in rtc.__all__


def test_resampler_quality_levels_match() -> None:
    assert {q.name: q.value for q in rtc.AudioResamplerQuality} == {
        q.name: q.value for q in livekit_rtc.AudioResamplerQuality
    }


def test_media_devices_name_the_missing_sound_device() -> None:
    with pytest.raises(rtc.PlatformAudioError, match="sound"):
        rtc.MediaDevices()
    with pytest.raises(rtc.PlatformAudioError, match="AudioSource"):
        rtc.PlatformAudio()
