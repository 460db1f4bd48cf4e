"""An agent-like official-SDK client, run by the agents environment's interpreter (livekit 1.1.x).

``python agent_like_client.py URL`` reads one join token per line on stdin. For each,
it joins as livekit-agents does (two PeerConnections, nothing subscribed by itself),
subscribes to the camera published, and publishes a video track of its own (MODE, the
second argument): ``together`` at once, while that subscription is negotiated;
``subscribed`` when the subscription is reported; ``first-frame`` when its first frame
is decoded. It prints ``joined`` once in the room (the camera may be published before or
after that) and ``published <sid>`` once its own track is, keeps sending frames until
the next line arrives on stdin, then leaves the room and prints ``left``. An empty line or the end of stdin ends it.
"""

from __future__ import annotations

import asyncio
import sys

from livekit import rtc

WIDTH, HEIGHT, FPS = 640, 480, 15
MODE = sys.argv[2] if len(sys.argv) > 2 else "subscribed"


async def one_room(url: str, token: str, lines: asyncio.StreamReader) -> None:
    room = rtc.Room()
    subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_published(publication: rtc.RemoteTrackPublication, _: rtc.RemoteParticipant) -> None:
        if publication.kind == rtc.TrackKind.KIND_VIDEO:
            publication.set_subscribed(True)

    def on_subscribed(*_: object) -> None:
        if not subscribed.done():
            subscribed.set_result(None)

    room.on("track_published", on_published)
    room.on("track_subscribed", on_subscribed)
    await room.connect(url, token, rtc.RoomOptions(auto_subscribe=False))
    print("joined", flush=True)
    for participant in room.remote_participants.values():
        for publication in participant.track_publications.values():
            on_published(publication, participant)
    if MODE != "together":
        # "together": publish at once, while the subscription's offer and answer are in flight
        await asyncio.wait_for(subscribed, 20)
    if MODE == "first-frame":
        remote = next(
            p.track
            for participant in room.remote_participants.values()
            for p in participant.track_publications.values()
            if p.track is not None
        )
        stream = rtc.VideoStream(remote)
        async for _ in stream:
            break
    source = rtc.VideoSource(WIDTH, HEIGHT)
    track = rtc.LocalVideoTrack.create_video_track("copy", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
    ours: rtc.LocalTrackPublication = await asyncio.wait_for(room.local_participant.publish_track(track, options), 20)
    print("published", ours.sid, flush=True)
    frame = rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.RGBA, bytes(WIDTH * HEIGHT * 4))
    next_line = asyncio.ensure_future(lines.readline())
    while not next_line.done():
        source.capture_frame(frame)
        await asyncio.sleep(1 / FPS)
    await room.disconnect()
    print("left", flush=True)


async def main(url: str) -> None:
    loop = asyncio.get_running_loop()
    lines = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(lines), sys.stdin)
    while token := (await lines.readline()).decode().strip():
        await one_room(url, token, lines)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
