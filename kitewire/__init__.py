"""kitewire: real-time video for Python with LiveKit's API.

``from kitewire import rtc`` is the client SDK (livekit.rtc's names and behaviour
for video); ``kitewire.server`` is an embedded SFU speaking the LiveKit signal
protocol.
"""

__version__ = "0.1.0"
