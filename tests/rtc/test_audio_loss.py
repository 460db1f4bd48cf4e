"""Under 10 % packet loss (nftables in the suite's own namespace, every direction) audio keeps
coming: concealment fills what is lost, and no gap in what AudioStream yields exceeds 100 ms."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from audio_peers import RATE, Heard, RoomFactory, listen, play, sound_start, subscribed_audio
from kitewire import rtc

from audio_signal import sine
from lossy_namespace import dropping_udp

pytestmark = pytest.mark.asyncio

SECONDS = 8.0


async def test_ten_percent_loss_is_concealed_without_gaps_over_100_ms(connect_room: RoomFactory) -> None:
    speaker, listener = await connect_room("lossy-speaker"), await connect_room("lossy-listener")
    source = rtc.AudioSource(RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("tone", source)
    await speaker.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    remote = await subscribed_audio(listener)
    stream = rtc.AudioStream(remote, sample_rate=RATE, num_channels=1, frame_size_ms=10)
    heard = Heard()
    await asyncio.sleep(0.3)
    with dropping_udp(10):
        player = asyncio.create_task(play(source, sine(440, SECONDS + 2)))
        await asyncio.sleep(1.0)  # the tone is flowing when measuring starts
        await listen(stream, heard, SECONDS)
        player.cancel()
    await stream.aclose()
    assert heard.arrivals, "nothing arrived under loss"
    samples = heard.samples()[:, 0]
    # what the stream yields has no hole: the longest run of (near) silence inside the tone
    # stays under 100 ms (concealment fades a lost stretch out over 100 ms, never cuts it)
    quiet = np.abs(samples[RATE // 10 :].astype(np.int32)) < 300
    edges = np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]]))
    runs = np.nonzero(edges == -1)[0] - np.nonzero(edges == 1)[0]
    longest = int(runs.max()) if len(runs) else 0
    assert longest < 0.1 * RATE, f"a {longest / RATE * 1000:.0f} ms hole in what AudioStream yielded"
    # about real time came out (concealment included), and it is mostly the tone
    assert len(samples) >= 0.9 * SECONDS * RATE
    assert sound_start(samples) < RATE // 10
    engine = listener._session.engine
    assert engine is not None
    pipeline = engine.remote_audio_pipeline(remote.sid)
    assert pipeline is not None
    # the loss was real, and it was concealed rather than skipped
    assert pipeline.packets_lost > 0
    assert pipeline.frames_concealed > 0
    # libopus rebuilt some lost frames from the FEC copy in the packet after them
    assert pipeline.frames_recovered > 0
    # lost frames were filled with sound, not silence: short quiet stretches are far fewer than losses
    assert int(np.sum(runs >= RATE // 100)) <= pipeline.packets_lost / 4
    assert float(np.mean(np.abs(samples.astype(np.int32)) > 1000)) > 0.5
