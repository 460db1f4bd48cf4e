"""The data side of kitewire.rtc against the installed livekit.rtc: names, submodules, members,
parameter names and the room events (the whole-API parity test is tests/rtc/test_api_parity.py)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing

import pytest
from kitewire import rtc
from livekit import rtc as livekit_rtc

# public module -> the names it has in livekit.rtc
SUBMODULES = {
    "rpc": ["RpcError", "RpcInvocationData", "RpcCallInfo", "RpcInterceptor"],
    "data_stream": [
        "StreamError",
        "BaseStreamInfo",
        "TextStreamInfo",
        "ByteStreamInfo",
        "TextStreamReader",
        "ByteStreamReader",
        "TextStreamWriter",
        "ByteStreamWriter",
        "TextStreamHandler",
        "ByteStreamHandler",
        "STREAM_CHUNK_SIZE",
    ],
    "transcription": ["Transcription", "TranscriptionSegment"],
}
TOP_LEVEL = [
    "DataPacket",
    "DataPacketKind",
    "SipDTMF",
    "Transcription",
    "TranscriptionSegment",
    "RpcError",
    "RpcInvocationData",
    "RpcCallInfo",
    "RpcInterceptor",
    "StreamError",
    "TextStreamInfo",
    "ByteStreamInfo",
    "TextStreamReader",
    "ByteStreamReader",
    "TextStreamWriter",
    "ByteStreamWriter",
]
LOCAL_METHODS = [
    "publish_data",
    "publish_dtmf",
    "publish_transcription",
    "perform_rpc",
    "register_rpc_method",
    "unregister_rpc_method",
    "add_rpc_interceptor",
    "remove_rpc_interceptor",
    "set_metadata",
    "set_name",
    "set_attributes",
    "stream_text",
    "send_text",
    "stream_bytes",
    "send_bytes",
    "send_file",
]
ROOM_METHODS = [
    "register_text_stream_handler",
    "unregister_text_stream_handler",
    "register_byte_stream_handler",
    "unregister_byte_stream_handler",
]
EVENTS = [
    "data_received",
    "sip_dtmf_received",
    "transcription_received",
    "participant_metadata_changed",
    "participant_name_changed",
    "participant_attributes_changed",
    "participant_permissions_changed",
    "room_metadata_changed",
    "active_speakers_changed",
    "connection_quality_changed",
]
# livekit's writers are built by the FFI from a LocalParticipant; kitewire's from a send function
CONSTRUCTED_DIFFERENTLY = {"TextStreamReader", "ByteStreamReader", "TextStreamWriter", "ByteStreamWriter"}


def _parameters(function: object) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]  # type: ignore[arg-type]


@pytest.mark.parametrize(("module", "names"), SUBMODULES.items())
def test_submodules_mirror_livekit(module: str, names: list[str]) -> None:
    ours = importlib.import_module(f"kitewire.rtc.{module}")
    theirs = importlib.import_module(f"livekit.rtc.{module}")
    for name in names:
        assert hasattr(theirs, name), f"livekit.rtc.{module} has no {name}: update this list"
        assert hasattr(ours, name), f"kitewire.rtc.{module} lacks {name}"


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_names_members_and_fields(name: str) -> None:
    theirs, ours = getattr(livekit_rtc, name), getattr(rtc, name)
    assert name in rtc.__all__
    # DESCRIPTOR: the protobuf descriptor of livekit's FFI enums, which kitewire's plain enums do not have
    public = {member for member in dir(theirs) if not member.startswith("_") and member != "DESCRIPTOR"}
    missing = sorted(member for member in public if not hasattr(ours, member))
    assert missing == [], f"{name} lacks {missing}"
    if dataclasses.is_dataclass(theirs):
        assert [f.name for f in dataclasses.fields(ours)] == [f.name for f in dataclasses.fields(theirs)]
    own_init = inspect.isclass(theirs) and "__init__" in vars(theirs) and not dataclasses.is_dataclass(theirs)
    if own_init and name not in CONSTRUCTED_DIFFERENTLY:
        assert _parameters(ours.__init__) == _parameters(theirs.__init__)


def test_error_codes_match() -> None:
    assert {c.name: int(c) for c in rtc.RpcError.ErrorCode} == {c.name: int(c) for c in livekit_rtc.RpcError.ErrorCode}
    assert {int(k): v for k, v in rtc.RpcError.ErrorMessage.items()} == {
        int(k): v for k, v in livekit_rtc.RpcError.ErrorMessage.items()
    }
    assert rtc.DataPacketKind.items() == livekit_rtc.DataPacketKind.items()


@pytest.mark.parametrize("method", LOCAL_METHODS)
def test_local_participant_methods_take_livekits_arguments(method: str) -> None:
    theirs = getattr(livekit_rtc.LocalParticipant, method)
    ours = getattr(rtc.LocalParticipant, method)
    assert _parameters(ours) == _parameters(theirs)
    assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(theirs)


@pytest.mark.parametrize("method", ROOM_METHODS)
def test_room_stream_handler_methods(method: str) -> None:
    assert _parameters(getattr(rtc.Room, method)) == _parameters(getattr(livekit_rtc.Room, method))


def test_room_events() -> None:
    from kitewire.rtc.room import EventTypes
    from livekit.rtc.room import EventTypes as LivekitEventTypes

    ours, theirs = set(typing.get_args(EventTypes)), set(typing.get_args(LivekitEventTypes))
    for event in EVENTS:
        assert event in theirs and event in ours, event
