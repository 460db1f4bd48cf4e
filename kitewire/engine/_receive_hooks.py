"""How a receive pipeline (video or audio) hooks into its RtpReceiver, and lets go of it.

A pipeline takes the receiver's packets and sender reports while it lives; when it
closes it gives back only the hooks that are still its own (a renegotiation may have
handed the receiver to a newer pipeline meanwhile) and stops its tasks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from kitewire.transport import RtpHeader, RtpReceiver

from .lipsync import SenderClock

__all__ = ["listen", "stop_listening"]


def listen(receiver: RtpReceiver, on_rtp: Callable[[bytes, RtpHeader], None], clock: SenderClock) -> None:
    """Route ``receiver``'s packets to ``on_rtp`` and its sender reports to ``clock``."""
    receiver.on_rtp = on_rtp
    receiver.on_sender_report = clock.on_sender_report


async def stop_listening(
    receiver: RtpReceiver,
    on_rtp: Callable[[bytes, RtpHeader], None],
    clock: SenderClock,
    wakeup: asyncio.Event,
    tasks: Iterable[asyncio.Task[None]],
) -> None:
    """Undo :func:`listen` where the hooks are still these, wake the decode loop and end ``tasks``."""
    if receiver.on_rtp == on_rtp:
        receiver.on_rtp = None
    if receiver.on_sender_report == clock.on_sender_report:
        receiver.on_sender_report = None
    wakeup.set()
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
