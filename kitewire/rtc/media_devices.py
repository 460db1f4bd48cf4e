"""MediaDevices and PlatformAudio: livekit's sound-card access. kitewire has none (it runs in
servers and CI, without sound devices); the names are here so that a program that imports
them gets a clear error naming what is missing when it uses them, not an AttributeError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["MediaDevices", "PlatformAudio", "PlatformAudioError"]


class PlatformAudioError(Exception):
    """No sound device (or no platform audio support) for what was asked."""


def _sound_devices() -> str:
    cards = Path("/proc/asound/cards")
    try:
        listed = cards.read_text().strip()
    except OSError:
        return "no sound card is visible (/proc/asound/cards is missing)"
    if not listed or "no soundcards" in listed:
        return "no sound card is installed (/proc/asound/cards lists none)"
    return f"kitewire does not drive sound cards (found: {listed.splitlines()[0].strip()})"


def _refuse(what: str) -> PlatformAudioError:
    return PlatformAudioError(
        f"{what} needs a sound device: {_sound_devices()}. kitewire.rtc has no platform audio; "
        "publish PCM with rtc.AudioSource and read it with rtc.AudioStream instead"
    )


class MediaDevices:
    """livekit's microphone/speaker helper; raises :class:`PlatformAudioError` naming the missing device."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise _refuse("MediaDevices (microphone input and speaker output)")


class PlatformAudio:
    """livekit's Audio Device Module access; raises :class:`PlatformAudioError` naming the missing device."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise _refuse("PlatformAudio (the platform's audio device module)")
