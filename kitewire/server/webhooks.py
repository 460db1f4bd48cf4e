"""Webhooks: room and participant events POSTed to the URLs of the ``webhook`` config.

Each event is a ``livekit.WebhookEvent`` in protobuf JSON, posted as
``application/webhook+json`` with an ``Authorization`` token signed by the
configured API key whose ``sha256`` claim is the body's digest (what
livekit-api's ``WebhookReceiver`` checks). Each URL has one sender task
draining a bounded queue in order, so events of a room arrive in the order
they happened; a full queue drops its oldest event (the next one sent says
how many in ``num_dropped``), and a receiver that is slow, refuses or never
answers costs only its own queue: ``notify`` never waits.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from google.protobuf.json_format import MessageToJson
from livekit.protocol import models as pb_models
from livekit.protocol import webhook as pb_webhook

from kitewire.signal.token import create_body_token

from .ids import new_id

__all__ = ["EVENTS", "WebhookNotifier", "WebhookSettings"]

logger = logging.getLogger("kitewire.server.webhooks")

#: The events kitewire sends (livekit-server's names).
EVENTS = (
    "room_started",
    "room_finished",
    "participant_joined",
    "participant_left",
    "participant_connection_aborted",
    "track_published",
    "track_unpublished",
)

_CONTENT_TYPE = "application/webhook+json"
# A receiver's answer is never read beyond this (its body means nothing to us).
_MAX_RESPONSE_BYTES = 4096


@dataclass(frozen=True)
class WebhookSettings:
    """Where and how webhooks go: ``urls``, the ``api_key`` that signs them and its ``api_secret``.

    ``queue_size`` bounds the events waiting per URL; each POST is given
    ``timeout`` seconds and tried ``attempts`` times, ``retry_delay`` seconds
    apart (doubling).
    """

    urls: tuple[str, ...]
    api_key: str
    api_secret: str
    queue_size: int = 256
    timeout: float = 5.0
    attempts: int = 3
    retry_delay: float = 0.25

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("webhook.urls: expected at least one http(s) URL, got none")
        for url in self.urls:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook.urls: expected http:// or https:// URLs, got {url!r}")
        if not self.api_key or not self.api_secret:
            raise ValueError(f"webhook.api_key: expected a configured API key, got {self.api_key!r}")
        if self.queue_size < 1 or self.attempts < 1 or not self.timeout > 0 or self.retry_delay < 0:
            raise ValueError(
                "webhook: expected queue_size >= 1, attempts >= 1, timeout > 0 and retry_delay >= 0, got "
                f"{self.queue_size}, {self.attempts}, {self.timeout}, {self.retry_delay}"
            )


@dataclass
class _Lane:
    """One URL's queue of serialized events and the task that sends them."""

    url: str
    queue: collections.deque[pb_webhook.WebhookEvent]
    wakeup: asyncio.Event
    dropped: int = 0
    sent: int = 0
    failed: int = 0
    task: asyncio.Task[None] | None = None


class WebhookNotifier:
    """Sends webhook events; a notifier without settings sends nothing.

    ``notify`` only queues. ``start`` begins sending (in a running loop);
    ``stop`` gives queued events ``drain_timeout`` seconds to go out, then
    cancels what is left.
    """

    def __init__(self, settings: WebhookSettings | None = None) -> None:
        self.settings = settings
        self._lanes: list[_Lane] = []
        self._session: aiohttp.ClientSession | None = None
        if settings is not None:
            for url in settings.urls:
                queue: collections.deque[pb_webhook.WebhookEvent] = collections.deque()
                self._lanes.append(_Lane(url, queue, asyncio.Event()))

    @property
    def enabled(self) -> bool:
        """Whether events are sent anywhere."""
        return bool(self._lanes)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per URL: events ``sent``, ``failed`` after every attempt, ``dropped`` from a full queue, ``queued``."""
        return {
            lane.url: {"sent": lane.sent, "failed": lane.failed, "dropped": lane.dropped, "queued": len(lane.queue)}
            for lane in self._lanes
        }

    async def start(self) -> None:
        """Start one sender per URL."""
        if not self._lanes or self._session is not None:
            return
        assert self.settings is not None
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.timeout))
        loop = asyncio.get_running_loop()
        for lane in self._lanes:
            lane.task = loop.create_task(self._run(lane))

    async def stop(self, drain_timeout: float = 2.0) -> None:
        """Send what is queued for up to ``drain_timeout`` seconds, then stop."""
        if self._session is None:
            return
        deadline = time.monotonic() + drain_timeout
        while any(lane.queue for lane in self._lanes) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for lane in self._lanes:
            if lane.task is not None:
                lane.task.cancel()
        await asyncio.gather(*(lane.task for lane in self._lanes if lane.task is not None), return_exceptions=True)
        session, self._session = self._session, None
        await session.close()

    def notify(
        self,
        event: str,
        room: pb_models.Room,
        *,
        participant: pb_models.ParticipantInfo | None = None,
        track: pb_models.TrackInfo | None = None,
    ) -> None:
        """Queue ``event`` (one of ``EVENTS``) about ``room`` for every URL; never waits."""
        if event not in EVENTS:
            raise ValueError(f"webhook event: expected one of {EVENTS}, got {event!r}")
        if not self._lanes:
            return
        message = pb_webhook.WebhookEvent(event=event, id=new_id("EV_"), created_at=int(time.time()))
        message.room.CopyFrom(room)
        if participant is not None:
            message.participant.CopyFrom(participant)
        if track is not None:
            message.track.CopyFrom(track)
        assert self.settings is not None
        for lane in self._lanes:
            if len(lane.queue) >= self.settings.queue_size:
                lane.queue.popleft()
                lane.dropped += 1
            lane.queue.append(message)
            lane.wakeup.set()

    async def _run(self, lane: _Lane) -> None:
        reported_dropped = 0
        while True:
            if not lane.queue:
                lane.wakeup.clear()
                await lane.wakeup.wait()
                continue
            # Taken off before sending: the queue bounds only what waits, and a drop never hits the one in flight.
            message = lane.queue.popleft()
            if lane.dropped != reported_dropped:
                message = _with_dropped(message, lane.dropped - reported_dropped)
                reported_dropped = lane.dropped
            try:
                delivered = await self._deliver(lane.url, MessageToJson(message, indent=None).encode())
            except Exception:
                # Whatever went wrong with one event, the lane goes on with the next.
                logger.exception("webhook %s to %s failed", message.event, lane.url)
                delivered = False
            if delivered:
                lane.sent += 1
            else:
                lane.failed += 1
                logger.warning("webhook %s to %s not delivered after retries", message.event, lane.url)

    async def _deliver(self, url: str, body: bytes) -> bool:
        settings, session = self.settings, self._session
        assert settings is not None and session is not None
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        delay = settings.retry_delay
        for attempt in range(settings.attempts):
            if attempt:
                await asyncio.sleep(delay)
                delay *= 2
            headers = {
                "Content-Type": _CONTENT_TYPE,
                "Authorization": create_body_token(settings.api_key, settings.api_secret, digest),
            }
            try:
                async with session.post(url, data=body, headers=headers, allow_redirects=False) as response:
                    await response.content.read(_MAX_RESPONSE_BYTES)
                    if 200 <= response.status < 300:
                        return True
                    logger.debug("webhook to %s: HTTP %d", url, response.status)
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                logger.debug("webhook to %s: %s", url, exc or type(exc).__name__)
        return False


def _with_dropped(message: pb_webhook.WebhookEvent, dropped: int) -> pb_webhook.WebhookEvent:
    copy = pb_webhook.WebhookEvent()
    copy.CopyFrom(message)
    copy.num_dropped = dropped
    return copy


def settings_from(urls: Sequence[str], api_key: str, keys: dict[str, str]) -> WebhookSettings:
    """``WebhookSettings`` for the config's ``webhook`` section, checking ``api_key`` is one of ``keys``."""
    if api_key not in keys:
        raise ValueError(f"webhook.api_key: expected one of the configured keys {sorted(keys)}, got {api_key!r}")
    return WebhookSettings(urls=tuple(urls), api_key=api_key, api_secret=keys[api_key])
