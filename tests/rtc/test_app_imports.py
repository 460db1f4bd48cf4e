"""With the engine in a media process, the application does not load the engine's heavy parts.

An application that imports ``kitewire.rtc``, connects a Room and publishes video and
audio leaves PyAV, aiortc, aioice, pylibsrtp, OpenSSL and OpenCV to its media process;
a VideoFrame conversion in the application's own code still works (and loads its
converter then).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kitewire.bench.server_process import EmbeddedServer
from kitewire.engine.process import media_process_enabled
from kitewire.signal import DEV_API_KEY, DEV_API_SECRET, create_token

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not media_process_enabled(), reason="KITEWIRE_MEDIA_PROCESS=0 runs the engine in-process"),
]

_ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "av",
    "aiortc",
    "aioice",
    "pylibsrtp",
    "OpenSSL",
    "cv2",
    "kitewire.engine.session",
    "kitewire.transport.peer_connection",
)

# the application: everything an SDK user does before touching frames itself
_APPLICATION = textwrap.dedent(
    """
    import asyncio, json, sys
    from kitewire import rtc

    HEAVY = {heavy!r}

    def loaded():
        return [name for name in HEAVY if name in sys.modules]

    async def main(url, token):
        after_import = loaded()
        room = rtc.Room()
        await room.connect(url, token)
        video = rtc.VideoSource(320, 180)
        camera = rtc.LocalVideoTrack.create_video_track("camera", video)
        await room.local_participant.publish_track(
            camera, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
        )
        audio = rtc.AudioSource(48000, 1)
        microphone = rtc.LocalAudioTrack.create_audio_track("microphone", audio)
        await room.local_participant.publish_track(
            microphone, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        frame = rtc.VideoFrame(320, 180, rtc.VideoBufferType.I420, bytearray(320 * 180 * 3 // 2))
        for _ in range(10):
            video.capture_frame(frame)
            await audio.capture_frame(rtc.AudioFrame.create(48000, 1, 480))
        stats = await room.get_rtc_stats()
        connected = loaded()
        media_pid = room._session.engine.media_pid
        # the user's own conversion: loads the converter in the application, and works
        rgba = frame.convert(rtc.VideoBufferType.RGBA).to_ndarray()
        print(json.dumps({{
            "after_import": after_import,
            "connected": connected,
            "media_pid": media_pid,
            "publisher_stats": len(stats.publisher_stats),
            "rgba_shape": list(rgba.shape),
            "after_convert": loaded(),
        }}), flush=True)
        await room.disconnect()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


@pytest.fixture
async def server_process() -> AsyncIterator[EmbeddedServer]:
    # the server in its own process: this test's interpreter has the whole engine loaded
    async with EmbeddedServer() as running:
        yield running


async def test_a_connected_publishing_room_leaves_the_engine_to_the_media_process(
    server_process: EmbeddedServer,
) -> None:
    token = create_token(DEV_API_KEY, DEV_API_SECRET, identity="light-app", room="imports")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])))
    application = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _APPLICATION.format(heavy=HEAVY),
        server_process.url,
        token,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=_ROOT,
    )
    try:
        stdout, stderr = await asyncio.wait_for(application.communicate(), 90)
    finally:
        if application.returncode is None:
            application.kill()
            await application.wait()
    assert application.returncode == 0, stderr.decode(errors="replace")[-2000:]
    report = json.loads(stdout.decode().strip().splitlines()[-1])
    assert report["after_import"] == []
    assert report["media_pid"] is not None and report["media_pid"] != application.pid
    # connected, publishing and asked for stats: the engine (and its native libraries)
    # runs only in the media process
    assert report["connected"] == []
    assert report["publisher_stats"] > 0
    assert report["rgba_shape"] == [180, 320, 4]
    assert "cv2" in report["after_convert"]
