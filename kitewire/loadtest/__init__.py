"""``kitewire load-test``: simulate video publishers and subscribers against a server.

Modelled on LiveKit's ``lk load-test``. Every simulated participant is a real
client on the wire, built on the SDK's own protocol client
(:class:`kitewire.engine.WireClient`): it joins through the signal protocol,
publishes with an AddTrackRequest and a publisher offer, or lets the server
subscribe it (over ``/rtc`` answering the server's offers, or with
``--single-pc`` over ``/rtc/v1`` offering receive slots). What is cheap about it:

* Publishers do not encode live. A moving test pattern is encoded ONCE per
  layer (VP8 by default, or H264; a few seconds starting with a keyframe) into
  RTP payloads; every publisher replays that loop with its own SSRC, sequence
  numbers, timestamps and (VP8) picture ids. A keyframe request restarts the
  loop at its keyframe.
* Subscribers do not decode. They count RTP packets and payload bytes per track
  and detect loss from sequence-number gaps, as ``lk load-test`` does
  (loss % = lost / (received + lost)). Once per frame they read the
  abs-capture-time the publisher stamped (its send time; the server forwards
  the extension) for the frame latency, and compare what arrived with what
  the publisher sent ("delivered"): a server that falls behind queues packets
  without gaps, which only this shows.

All simulated participants share one event loop. Counting happens over a
measuring window that starts once every subscriber receives every published
track. When the server's process id is known (``--embedded`` starts
``kitewire serve`` in a child process; ``--server-pid`` names one) the server's
CPU time over that window (``/proc/<pid>/stat`` utime + stime) is divided by the
packets the subscribers received: microseconds of server CPU per forwarded
packet.

Bounded on purpose: loopback servers only, at most :data:`MAX_SUBSCRIBERS`
subscribers, :data:`MAX_PUBLISHERS` publishers and :data:`MAX_DURATION` seconds,
an overall deadline, and every connection (and an embedded server) closed at the
end, on error and on Ctrl-C too.

From Python::

    result = await run_load_test(LoadTestParams(embedded=True, subscribers=10, duration=5))
    print(format_report(result))
    result.cpu_us_per_packet, result.loss_percent, result.median_kbps, result.mean_latency_ms
"""

from kitewire.bench.server_process import EmbeddedServer

from .cli import add_arguments, run
from .params import (
    MAX_DURATION,
    MAX_PUBLISHERS,
    MAX_SUBSCRIBERS,
    RESOLUTIONS,
    VIDEO_CODECS,
    LoadTestParams,
    LoadTestResult,
    TrackResult,
)
from .replay import EncodedLoop, encode_loop
from .report import format_report
from .runner import run_load_test

__all__ = [
    "MAX_DURATION",
    "MAX_PUBLISHERS",
    "MAX_SUBSCRIBERS",
    "RESOLUTIONS",
    "VIDEO_CODECS",
    "EmbeddedServer",
    "EncodedLoop",
    "LoadTestParams",
    "LoadTestResult",
    "TrackResult",
    "add_arguments",
    "encode_loop",
    "format_report",
    "run",
    "run_load_test",
]
