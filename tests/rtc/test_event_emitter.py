"""rtc.EventEmitter: livekit's on/once/off/emit behaviour."""

from __future__ import annotations

import pytest
from kitewire import rtc


def test_on_decorator_and_argument_truncation() -> None:
    emitter: rtc.EventEmitter[str] = rtc.EventEmitter()
    calls: list[tuple[object, ...]] = []

    @emitter.on("track_subscribed")
    def all_args(track: object, publication: object, participant: object) -> None:
        calls.append((track, publication, participant))

    @emitter.on("track_subscribed")
    def first_only(track: object) -> None:
        calls.append((track,))

    emitter.emit("track_subscribed", "t", "p", "who")
    assert calls == [("t", "p", "who"), ("t",)]


def test_once_off_and_failing_callback_does_not_stop_others() -> None:
    emitter: rtc.EventEmitter[str] = rtc.EventEmitter()
    seen: list[str] = []
    emitter.once("x", lambda value: seen.append(f"once:{value}"))

    def broken(value: str) -> None:
        raise RuntimeError("boom")

    emitter.on("x", broken)
    keep = emitter.on("x", lambda value: seen.append(f"on:{value}"))
    emitter.emit("x", "a")
    emitter.emit("x", "b")
    emitter.off("x", keep)
    emitter.emit("x", "c")
    assert seen == ["once:a", "on:a", "on:b"]


def test_async_callback_is_refused() -> None:
    emitter: rtc.EventEmitter[str] = rtc.EventEmitter()

    async def handler() -> None:
        return None

    with pytest.raises(ValueError, match="synchronous"):
        emitter.on("connected", handler)


def test_a_handlers_type_error_is_raised_as_livekit_does() -> None:
    emitter: rtc.EventEmitter[str] = rtc.EventEmitter()
    later: list[str] = []

    def wrong_signature(value: str, *, needed: str) -> None:
        later.append("never")

    emitter.on("x", wrong_signature)
    emitter.on("x", later.append)
    with pytest.raises(TypeError, match="needed"):
        emitter.emit("x", "a")
    assert later == []


def test_the_room_logs_a_handlers_type_error_instead_of_breaking(caplog: pytest.LogCaptureFixture) -> None:
    room = rtc.Room()
    seen: list[object] = []

    def wrong_signature(participant: object, *, needed: str) -> None:
        seen.append(participant)

    room.on("participant_connected", wrong_signature)
    with caplog.at_level("ERROR", logger="kitewire.rtc"):
        room._emit_event("participant_connected", "someone")
    assert seen == []
    assert "error running user callback for participant_connected" in caplog.text
    room.off("participant_connected", wrong_signature)
    room.on("participant_connected", seen.append)
    room._emit_event("participant_connected", "someone")
    assert seen == ["someone"]
