"""Webhooks: a room's whole life as livekit-api's WebhookReceiver sees it, and receivers that misbehave."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from kitewire.server import Server, ServerConfig
from kitewire.server.webhooks import WebhookNotifier, WebhookSettings
from kitewire.signal import connect, create_token
from livekit import api, rtc
from livekit.protocol import models as pb_models

from polling import eventually

from .conftest import KEY, SECRET, make_token
from .sdk_media import CounterPublisher, CounterReader, in_order_fraction, subscribed_tracks

pytestmark = pytest.mark.timeout(120)


@dataclass
class Received:
    """What a receiver got: verified events in arrival order, and each request's content type."""

    events: list[api.WebhookEvent] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    requests: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


Handler = Callable[[web.Request, Received], Awaitable[web.StreamResponse]]


async def _verifying(request: web.Request, received: Received) -> web.StreamResponse:
    body = await request.text()
    receiver = api.WebhookReceiver(api.TokenVerifier(KEY, SECRET))
    received.events.append(receiver.receive(body, request.headers["Authorization"]))
    received.content_types.append(request.content_type)
    return web.Response(text="ok")


@asynccontextmanager
async def receiver(handler: Handler = _verifying) -> AsyncIterator[tuple[str, Received]]:
    """An HTTP webhook receiver on 127.0.0.1: its URL and what it received."""
    received = Received()

    async def handle(request: web.Request) -> web.StreamResponse:
        received.requests += 1
        received.arrived.set()
        return await handler(request, received)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/hook", received
    finally:
        await runner.cleanup()


async def test_a_rooms_whole_life_arrives_verified_and_in_order() -> None:
    async with receiver() as (url, received):
        config = ServerConfig.dev(port=0, empty_timeout=0.3, webhook_urls=[url], webhook_api_key=KEY)
        async with Server(config) as server:
            room = rtc.Room()
            await asyncio.wait_for(room.connect(server.url, make_token("alice", "hooks")), 20)
            publisher = CounterPublisher(room, 320, 240, simulcast=False, codec=rtc.VideoCodec.VP8)
            publication = await publisher.start()
            assert await eventually(lambda: any(e.event == "track_published" for e in received.events), 20)
            await room.local_participant.unpublish_track(publication.sid)
            await publisher.stop()
            assert await eventually(lambda: any(e.event == "track_unpublished" for e in received.events), 20)
            await room.disconnect()
            assert await eventually(lambda: any(e.event == "room_finished" for e in received.events), 20)
    names = [event.event for event in received.events]
    assert names == [
        "room_started",
        "participant_joined",
        "track_published",
        "track_unpublished",
        "participant_left",
        "room_finished",
    ]
    assert set(received.content_types) == {"application/webhook+json"}
    assert all(event.room.name == "hooks" for event in received.events)
    assert len({event.room.sid for event in received.events}) == 1
    by_name = {event.event: event for event in received.events}
    assert by_name["participant_joined"].participant.identity == "alice"
    assert by_name["participant_left"].participant.identity == "alice"
    track = by_name["track_published"].track
    assert track.sid == publication.sid and track.type == pb_models.VIDEO
    assert by_name["track_unpublished"].track.sid == publication.sid
    assert len({event.id for event in received.events}) == len(received.events)


async def test_a_participant_that_never_connects_media_is_aborted_not_joined() -> None:
    async with receiver() as (url, received):
        config = ServerConfig.dev(port=0, empty_timeout=0.2, webhook_urls=[url], webhook_api_key=KEY)
        async with Server(config) as server:
            client, _ = await connect(server.url, create_token(KEY, SECRET, identity="signal-only", room="aborted"))
            await client.close()
            assert await eventually(lambda: any(e.event == "room_finished" for e in received.events), 20)
    assert [event.event for event in received.events] == [
        "room_started",
        "participant_connection_aborted",
        "room_finished",
    ]
    assert received.events[1].participant.identity == "signal-only"


async def test_a_receiver_that_never_answers_delays_no_join() -> None:
    release = asyncio.Event()

    async def hang(request: web.Request, received: Received) -> web.StreamResponse:
        await release.wait()
        return web.Response(text="late")

    async with receiver(hang) as (url, received):
        config = ServerConfig.dev(port=0, empty_timeout=0.3, webhook_urls=[url], webhook_api_key=KEY)
        async with Server(config) as server:
            rooms = [rtc.Room() for _ in range(3)]
            try:
                for index, room in enumerate(rooms):
                    await asyncio.wait_for(room.connect(server.url, make_token(f"p{index}", "stuck")), 20)
                # Every join completed while the receiver still held the first webhook unanswered.
                assert received.requests >= 1 and not release.is_set()
                assert len(rooms[0].remote_participants) == 2
                # room_started in flight; each participant_joined queues once its connection is up on the server too.
                assert await eventually(lambda: server.webhooks.stats()[url]["queued"] >= 3, 20)
                assert server.webhooks.stats()[url]["sent"] == 0 and not release.is_set()
            finally:
                for room in rooms:
                    await room.disconnect()
                release.set()


async def test_a_full_queue_drops_the_oldest_and_says_how_many() -> None:
    gate = asyncio.Event()

    async def gated(request: web.Request, received: Received) -> web.StreamResponse:
        await gate.wait()
        return await _verifying(request, received)

    async with receiver(gated) as (url, received):
        notifier = WebhookNotifier(WebhookSettings(urls=(url,), api_key=KEY, api_secret=SECRET, queue_size=4))
        await notifier.start()
        try:
            for index in range(10):
                notifier.notify("room_started", pb_models.Room(name=f"r{index}"))
                await asyncio.sleep(0)  # lets the sender take the first event before the rest queue up
            assert await eventually(lambda: received.requests >= 1, 10)
            assert notifier.stats()[url]["queued"] <= 4
            gate.set()
            assert await eventually(lambda: notifier.stats()[url]["queued"] == 0 and len(received.events) >= 4, 10)
        finally:
            await notifier.stop()
    names = [event.room.name for event in received.events]
    assert names[-3:] == ["r7", "r8", "r9"]
    assert sum(event.num_dropped for event in received.events) == 10 - len(received.events)
    assert notifier.stats()[url]["dropped"] == 10 - len(received.events)


async def test_refusing_receivers_are_retried_then_given_up() -> None:
    async def refuse(request: web.Request, received: Received) -> web.StreamResponse:
        return web.Response(status=500, body=b"x" * 100_000)

    async with receiver(refuse) as (url, received):
        settings = WebhookSettings(urls=(url,), api_key=KEY, api_secret=SECRET, attempts=3, retry_delay=0.01)
        notifier = WebhookNotifier(settings)
        await notifier.start()
        try:
            notifier.notify("room_started", pb_models.Room(name="r"))
            notifier.notify("room_finished", pb_models.Room(name="r"))
            assert await eventually(lambda: notifier.stats()[url]["failed"] == 2, 10)
        finally:
            await notifier.stop()
    assert received.requests == 6
    assert notifier.stats()[url]["sent"] == 0


@pytest.mark.parametrize(
    ("urls", "key", "message"),
    [
        (["file:///etc/passwd"], KEY, "http"),
        (["ftp://127.0.0.1/x"], KEY, "http"),
        (["http://127.0.0.1:9/hook"], "forged", "api_key"),
        ([], KEY, "urls"),
    ],
)
def test_forged_webhook_configs_are_refused_at_start(urls: list[str], key: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Server(ServerConfig.dev(port=0, webhook_urls=urls, webhook_api_key=key))


def test_unknown_events_are_refused() -> None:
    with pytest.raises(ValueError, match="room_started"):
        WebhookNotifier().notify("room_exploded", pb_models.Room())


async def test_hostile_receivers_leave_a_neighbouring_room_its_frames() -> None:
    """Webhooks to a receiver that hangs, one that answers 500 with a large body and a closed port, while a
    churning room makes events: the neighbouring room's video still arrives (>= 90 % of counters, in order)."""
    release = asyncio.Event()

    async def hang(request: web.Request, received: Received) -> web.StreamResponse:
        await release.wait()
        return web.Response()

    async def refuse(request: web.Request, received: Received) -> web.StreamResponse:
        return web.Response(status=500, body=b"x" * 1_000_000)

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_url = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
    closed.close()
    async with receiver(hang) as (hang_url, _), receiver(refuse) as (refuse_url, refused):
        urls = [hang_url, refuse_url, closed_url]
        config = ServerConfig.dev(port=0, empty_timeout=0.2, webhook_urls=urls, webhook_api_key=KEY)
        async with Server(config) as server:
            alice, bob = rtc.Room(), rtc.Room()
            tracks = subscribed_tracks(bob)
            publisher = CounterPublisher(alice, 320, 240, simulcast=False, codec=rtc.VideoCodec.VP8)
            reader: CounterReader | None = None
            churned = 0
            try:
                await asyncio.wait_for(alice.connect(server.url, make_token("alice", "calm")), 20)
                await asyncio.wait_for(bob.connect(server.url, make_token("bob", "calm")), 20)
                await publisher.start()
                reader = CounterReader(await asyncio.wait_for(tracks.get(), 20))
                await asyncio.wait_for(reader.first_frame.wait(), 20)
                start_index = len(reader.counters)
                deadline = time.monotonic() + 4.0
                while time.monotonic() < deadline:
                    client, _ = await connect(
                        server.url, create_token(KEY, SECRET, identity="c", room=f"churn{churned}")
                    )
                    await client.close()
                    churned += 1
                window = reader.window(start_index)
            finally:
                if reader is not None:
                    await reader.close()
                await publisher.stop()
                await alice.disconnect()
                await bob.disconnect()
                release.set()
            stats = server.webhooks.stats()
    fraction, increasing = in_order_fraction(window)
    assert churned >= 5 and increasing and fraction >= 0.9, (churned, fraction, window[:40])
    assert len(window) >= 4.0 * 30 * 0.5, f"only {len(window)} frames in 4 s"
    assert refused.requests >= 1 and stats[closed_url]["sent"] == 0


async def test_a_post_that_times_out_is_retried_then_the_next_event_goes() -> None:
    release = asyncio.Event()

    async def hang_first(request: web.Request, received: Received) -> web.StreamResponse:
        if "r-hang" in await request.text():
            await release.wait()
        return await _verifying(request, received)

    async with receiver(hang_first) as (url, received):
        settings = WebhookSettings(urls=(url,), api_key=KEY, api_secret=SECRET, timeout=0.3, attempts=2, retry_delay=0)
        notifier = WebhookNotifier(settings)
        await notifier.start()
        try:
            notifier.notify("room_started", pb_models.Room(name="r-hang"))
            notifier.notify("room_started", pb_models.Room(name="r-next"))
            assert await eventually(lambda: len(received.events) == 1, 10)
        finally:
            release.set()
            await notifier.stop()
    assert received.requests == 3  # two timed-out attempts, then the next event
    assert received.events[0].room.name == "r-next"
    assert notifier.stats()[url]["failed"] == 1 and notifier.stats()[url]["sent"] == 1
