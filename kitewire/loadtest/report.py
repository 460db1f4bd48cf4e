"""The load-test report: tables of what the run measured."""

from __future__ import annotations

from .params import LoadTestResult


def _format_bitrate(kbps: float) -> str:
    return f"{kbps / 1000:.2f} Mbps" if kbps >= 1000 else f"{kbps:.0f} kbps"


def _format_loss(packets: int, lost: int) -> str:
    if packets == 0:
        return " - "
    return f"{lost} ({100.0 * lost / (packets + lost):.3g}%)"


def _format_percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _format_latency(mean_ms: float | None, max_ms: float | None) -> str:
    if mean_ms is None or max_ms is None:
        return "-"
    return f"{mean_ms:.1f}/{max_ms:.1f} ms"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
    return "\n".join(lines)


def format_report(result: LoadTestResult, *, per_track: bool = True) -> str:
    """The tables ``kitewire load-test`` prints: per track, per subscriber, totals, server CPU."""
    out: list[str] = []
    if per_track and result.tracks:
        rows = []
        previous = ""
        for track in result.tracks:
            rows.append(
                [
                    track.subscriber if track.subscriber != previous else "",
                    track.track_sid,
                    "video",
                    str(track.packets),
                    _format_bitrate(track.kbps),
                    _format_loss(track.packets, track.lost),
                    _format_percent(track.delivered_percent),
                    _format_latency(track.mean_latency_ms, track.max_latency_ms),
                ]
            )
            previous = track.subscriber
        out.append("Track loading:")
        out.append(
            _table(["Tester", "Track", "Kind", "Pkts.", "Bitrate", "Pkt. Loss", "Delivered", "Latency avg/max"], rows)
        )
        out.append("")
    rows = []
    for name in result.subscribers:
        mine = result.tracks_of(name)
        packets = sum(t.packets for t in mine)
        lost = sum(t.lost for t in mine)
        kbps = sum(t.kbps for t in mine)
        receiving = sum(1 for t in mine if t.packets > 0)
        error = result.errors.get(name, "")
        rows.append(
            [
                name,
                f"{receiving}/{result.expected_tracks}",
                _format_bitrate(kbps),
                _format_loss(packets, lost),
                error if len(error) <= 70 else error[:67] + "...",
            ]
        )
    total_kbps = sum(t.kbps for t in result.tracks)
    receiving_total = sum(1 for t in result.tracks if t.packets > 0)
    average = total_kbps / len(result.subscribers) if result.subscribers else 0.0
    rows.append(
        [
            "Total",
            f"{receiving_total}/{result.expected_tracks * len(result.subscribers)}",
            f"{_format_bitrate(total_kbps)} ({_format_bitrate(average)} avg)",
            _format_loss(result.packets_forwarded, result.packets_lost),
            str(len(result.errors)),
        ]
    )
    out.append("Subscriber summaries:")
    out.append(_table(["Tester", "Tracks", "Bitrate", "Total Pkt. Loss", "Error"], rows))
    out.append("")
    out.append(
        f"Forwarded packets (received by subscribers in {result.window_seconds:.1f} s): {result.packets_forwarded}; "
        f"median track bitrate {_format_bitrate(result.median_kbps)}; loss {result.loss_percent:.3g}%; "
        f"delivered {_format_percent(result.delivered_percent)} of what was sent; "
        f"frame latency {_format_latency(result.mean_latency_ms, result.max_latency_ms)}"
    )
    delivered = result.delivered_percent
    if delivered is not None and delivered < 95.0:
        out.append(
            "Warning: subscribers received clearly less than the publishers sent, without sequence gaps: "
            "the server (or this machine) is falling behind and packets are queueing."
        )
    out.append(
        f"Publishers sent {result.publisher_packets} packets in {result.publisher_frames} frames "
        f"({result.publisher_keyframes} keyframes) in the window"
    )
    publisher_errors = {k: v for k, v in result.errors.items() if k.startswith("Pub")}
    for name, error in publisher_errors.items():
        out.append(f"{name}: {error}")
    if result.cpu_us_per_packet is not None and result.server_cpu_seconds is not None:
        out.append(
            f"Server pid {result.server_pid}: {result.server_cpu_seconds:.2f} s CPU in the window "
            f"({result.server_cpu_percent:.0f}% of a core), "
            f"{result.cpu_us_per_packet:.1f} us CPU per forwarded packet"
        )
    elif result.server_pid is not None:
        out.append(f"Server pid {result.server_pid}: no packets forwarded, CPU per packet undefined")
    if result.window_seconds > 0:
        out.append(
            f"Load-test process: {100.0 * result.client_cpu_seconds / result.window_seconds:.0f}% of a core "
            "(near 100% means the simulated clients, not the server, set the limit)"
        )
        waits = [
            f"{who} {100.0 * wait / result.window_seconds:.0f}%"
            for who, wait in (("server", result.server_wait_seconds), ("load test", result.client_wait_seconds))
            if wait is not None
        ]
        if waits:
            out.append(
                f"Waiting for a CPU (runnable, not running) in the window: {', '.join(waits)} "
                "(high values: the machine is busy, latency and delivery suffer from that)"
            )
    return "\n".join(out)
