"""``kitewire.rtc.log``: the logger kitewire.rtc reports through ("kitewire.rtc"), where
livekit.rtc keeps its own."""

import logging

logger = logging.getLogger("kitewire.rtc")

__all__ = ["logger"]
