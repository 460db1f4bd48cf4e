"""kitewire.rtc offers livekit.rtc's video API: same classes, members and argument names."""

from __future__ import annotations

import enum
import inspect

import pytest
from kitewire import rtc
from livekit import rtc as livekit_rtc

VIDEO_CLASSES = [
    "Room",
    "Participant",
    "LocalParticipant",
    "RemoteParticipant",
    "TrackPublication",
    "LocalTrackPublication",
    "RemoteTrackPublication",
    "Track",
    "LocalVideoTrack",
    "RemoteVideoTrack",
    "VideoSource",
    "VideoStream",
    "VideoFrameEvent",
    "RoomOptions",
    "RtcConfiguration",
    "EventEmitter",
    "ConnectError",
]
# audio, data, RPC, text/byte streams, E2EE and stats: outside kitewire's video scope
NOT_VIDEO = {
    "publish_data",
    "publish_dtmf",
    "publish_transcription",
    "perform_rpc",
    "register_rpc_method",
    "unregister_rpc_method",
    "stream_text",
    "send_text",
    "stream_bytes",
    "send_file",
    "send_bytes",
    "publish_data_track",
    "set_track_subscription_permissions",
    "set_metadata",
    "set_name",
    "set_attributes",
    "register_byte_stream_handler",
    "unregister_byte_stream_handler",
    "register_text_stream_handler",
    "unregister_text_stream_handler",
    "add_rpc_interceptor",
    "remove_rpc_interceptor",
    "e2ee_manager",
    "get_rtc_stats",
    "get_stats",
    "simulate_scenario",
    "copy_with",
}
VIDEO_NAMES = [
    "VideoFrame",
    "VideoBufferType",
    "VideoRotation",
    "VideoCodec",
    "VideoQuality",
    "TrackSource",
    "TrackKind",
    "TrackPublishOptions",
    "VideoEncoding",
    "ConnectionState",
    "DisconnectReason",
    "ConnectionQuality",
    "ParticipantKind",
    "ParticipantState",
    "StreamState",
]
ENUMS = [
    "VideoBufferType",
    "VideoRotation",
    "VideoCodec",
    "VideoQuality",
    "TrackSource",
    "TrackKind",
    "ConnectionState",
    "DisconnectReason",
    "ConnectionQuality",
    "ParticipantKind",
    "ParticipantState",
    "StreamState",
]


def enum_items(namespace: object) -> dict[str, int]:
    if isinstance(namespace, type) and issubclass(namespace, enum.Enum):
        return {member.name: int(member.value) for member in namespace}
    return dict(namespace.items())  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", VIDEO_CLASSES)
def test_class_members_and_signatures_match(name: str) -> None:
    theirs, ours = getattr(livekit_rtc, name), getattr(rtc, name)
    their_members = {m for m in dir(theirs) if not m.startswith("_")} - NOT_VIDEO
    our_members = {m for m in dir(ours) if not m.startswith("_")}
    assert sorted(their_members - our_members) == []
    for member in sorted(their_members):
        their_attr, our_attr = getattr(theirs, member), getattr(ours, member)
        if not callable(their_attr) or isinstance(their_attr, type):
            continue
        try:
            their_params = list(inspect.signature(their_attr).parameters)
        except (TypeError, ValueError):
            continue
        assert list(inspect.signature(our_attr).parameters) == their_params, f"{name}.{member}"


@pytest.mark.parametrize("name", VIDEO_NAMES)
def test_video_names_exist(name: str) -> None:
    assert hasattr(livekit_rtc, name) and hasattr(rtc, name) and name in rtc.__all__


@pytest.mark.parametrize("name", ENUMS)
def test_enums_have_livekit_members_and_numbers(name: str) -> None:
    assert enum_items(getattr(rtc, name)) == enum_items(getattr(livekit_rtc, name))


def test_room_events_match() -> None:
    from typing import get_args

    from kitewire.rtc.room import EventTypes

    required = {
        "participant_connected",
        "participant_disconnected",
        "local_track_published",
        "local_track_unpublished",
        "track_published",
        "track_unpublished",
        "track_subscribed",
        "track_unsubscribed",
        "track_muted",
        "track_unmuted",
        "connection_state_changed",
        "connected",
        "disconnected",
    }
    assert required <= set(get_args(EventTypes))
    assert required <= set(get_args(livekit_rtc.room.EventTypes))
