"""SFU capacity: server CPU per forwarded packet, 1 VP8 publisher at 720p to N subscribers.

Each row starts a fresh ``kitewire serve --dev`` in a child process and runs
``kitewire load-test`` against it (simulated publisher replaying a pre-encoded
VP8 loop, subscribers that count RTP without decoding). The server's
utime + stime over the measuring window is divided by the packets the
subscribers received.

Anchor for the reader: LiveKit (Go, pion) publishes a capacity of roughly 100
video downtracks per CPU core, i.e. about 66 us of CPU per forwarded packet at
~150 packets/s per 720p track. Our target is <= 20 us.

    python -m kitewire.bench.sfu [--quick] [--rows 1,10,50,100] [--duration 10]
                              [--profile DIR]   # py-spy the server during each window
                              [--single-pc]     # subscribers join via /rtc/v1

With --profile, py-spy records the server process during the measuring window
of each row and the hottest functions (own time) are printed under the table.
The load-test client runs on the same cores as the server, so a busy machine
lowers the ceiling but not the per-packet figure much.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import subprocess
import sys
from pathlib import Path

from kitewire.loadtest import LoadTestParams, LoadTestResult, run_load_test

LIVEKIT_US_PER_PACKET = 66.0
TARGET_US_PER_PACKET = 20.0


def summarize_collapsed(path: Path, top: int = 15) -> list[tuple[str, float, float]]:
    """(function, own %, inclusive %) of the hottest frames in a py-spy raw (collapsed) profile."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        return []
    return [(frame, 100.0 * n / total, 100.0 * inclusive[frame] / total) for frame, n in own.most_common(top)]


async def run_row(
    subscribers: int, duration: float, profile_dir: Path | None, single_pc: bool = False
) -> tuple[LoadTestResult, Path | None]:
    params = LoadTestParams(
        embedded=True,
        room=f"capacity-{subscribers}",
        video_publishers=1,
        subscribers=subscribers,
        duration=duration,
        resolution="720p",
        simulcast=False,
        single_pc=single_pc,
        warmup=30.0,
    )
    spies: list[subprocess.Popen[bytes]] = []
    server_pid: list[int] = []
    profile_path = profile_dir / f"server-{subscribers}-subscribers.txt" if profile_dir is not None else None

    def log(line: str) -> None:
        print(f"  {line}", flush=True)
        if line.startswith("Started kitewire serve (pid "):
            server_pid.append(int(line.split("(pid ", 1)[1].split(")", 1)[0]))
        if profile_path is not None and "measuring for" in line and server_pid:
            spies.append(
                subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "--pid",
                        str(server_pid[0]),
                        "--duration",
                        str(int(duration)),
                        "--rate",
                        "200",
                        "--function",
                        "--format",
                        "raw",
                        "--output",
                        str(profile_path),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    try:
        result = await run_load_test(params, log=log)
    finally:
        for spy in spies:
            try:
                spy.wait(timeout=15)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
    return result, profile_path if profile_path is not None and profile_path.exists() else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s rows with 1 and 10 subscribers")
    parser.add_argument("--rows", default=None, help="comma-separated subscriber counts (default 1,10,50,100)")
    parser.add_argument("--duration", type=float, default=None, help="measuring window per row in seconds")
    parser.add_argument("--profile", type=Path, default=None, help="directory for py-spy profiles of the server")
    parser.add_argument("--single-pc", action="store_true", help="subscribers join like livekit 1.x SDKs (/rtc/v1)")
    args = parser.parse_args()
    rows = [1, 10] if args.quick else [1, 10, 50, 100]
    if args.rows:
        rows = [int(part) for part in args.rows.split(",") if part.strip()]
    duration = args.duration or (5.0 if args.quick else 10.0)
    if args.profile is not None:
        if shutil.which("py-spy") is None:
            print("--profile needs py-spy on PATH", file=sys.stderr)
            return 2
        args.profile.mkdir(parents=True, exist_ok=True)

    mode = "/rtc/v1 single-PC" if args.single_pc else "/rtc two-PC"
    print(
        f"SFU capacity: 1 VP8 publisher (720p, 1.7 Mbps target) -> N {mode} subscribers, {duration:g} s windows, "
        f"{os.cpu_count()} CPUs"
    )
    results: list[tuple[int, LoadTestResult, Path | None]] = []
    for subscribers in rows:
        print(f"\n{subscribers} subscribers:", flush=True)
        result, profile = asyncio.run(run_row(subscribers, duration, args.profile, args.single_pc))
        results.append((subscribers, result, profile))

    headers = [
        "subscribers",
        "tracks ok",
        "kbps/track (median)",
        "loss %",
        "delivered %",
        "latency avg/max ms",
        "fwd pkts/s",
        "client CPU %",
        "server CPU %",
        "server CPU wait %",
        "us/pkt",
        "target",
        "LiveKit",
    ]
    table: list[list[str]] = []
    for subscribers, result, _ in results:
        receiving = sum(1 for t in result.tracks if t.packets > 0)
        per_packet = result.cpu_us_per_packet
        cpu_percent = result.server_cpu_percent
        table.append(
            [
                str(subscribers),
                f"{receiving}/{subscribers * result.expected_tracks}",
                f"{result.median_kbps:.0f}",
                f"{result.loss_percent:.2f}",
                f"{result.delivered_percent:.1f}" if result.delivered_percent is not None else "-",
                f"{result.mean_latency_ms:.1f}/{result.max_latency_ms:.1f}"
                if result.mean_latency_ms is not None and result.max_latency_ms is not None
                else "-",
                f"{result.packets_forwarded / result.window_seconds:.0f}" if result.window_seconds else "-",
                f"{100.0 * result.client_cpu_seconds / result.window_seconds:.0f}" if result.window_seconds else "-",
                f"{cpu_percent:.0f}" if cpu_percent is not None else "-",
                f"{100.0 * result.server_wait_seconds / result.window_seconds:.0f}"
                if result.server_wait_seconds is not None and result.window_seconds
                else "-",
                f"{per_packet:.1f}" if per_packet is not None else "-",
                f"<= {TARGET_US_PER_PACKET:g}",
                f"~{LIVEKIT_US_PER_PACKET:g}",
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers)]
    print()
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths)))
    for row in table:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    print("us/pkt = server process CPU (utime+stime) in the window / RTP packets received by all subscribers")
    print("server CPU wait % = share of the window the server was runnable but had no CPU (a busy machine)")
    # The fixed cost (receiving the publisher, RTCP, timers) dominates small rows;
    # the slope between rows is the cost of one more forwarded packet.
    measured = [(n, r) for n, r, _ in results if r.server_cpu_seconds is not None and r.window_seconds > 0]
    for (n1, r1), (n2, r2) in zip(measured, measured[1:]):
        assert r1.server_cpu_seconds is not None and r2.server_cpu_seconds is not None
        cpu_rate = r2.server_cpu_seconds / r2.window_seconds - r1.server_cpu_seconds / r1.window_seconds
        packet_rate = r2.packets_forwarded / r2.window_seconds - r1.packets_forwarded / r1.window_seconds
        if packet_rate > 0:
            marginal = cpu_rate / packet_rate * 1e6
            print(f"marginal cost {n1} -> {n2} subscribers: {marginal:.1f} us per extra forwarded packet")

    for subscribers, result, profile in results:
        if result.errors:
            print(f"\n{subscribers} subscribers: errors: {result.errors}")
        if profile is None:
            continue
        print(f"\nServer hot spots with {subscribers} subscribers (py-spy, {profile}):")
        print(f"  {'own %':>6}  {'incl %':>6}  function")
        for frame, own_share, inclusive_share in summarize_collapsed(profile):
            print(f"  {own_share:6.1f}  {inclusive_share:6.1f}  {frame}")
    failed = any(not result.complete for _, result, _ in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
