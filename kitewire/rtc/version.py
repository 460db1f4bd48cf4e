"""``kitewire.rtc.version``: the SDK's version, where livekit.rtc keeps its own."""

__version__ = "0.1.0"

__all__ = ["__version__"]
