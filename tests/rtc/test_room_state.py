"""Room's bookkeeping of the server's participant updates, fed directly (no network):
events in livekit's order, and odd or repeated updates handled without errors."""

from __future__ import annotations

from kitewire import rtc
from livekit.protocol import models


def participant(
    sid: str, identity: str, *tracks: models.TrackInfo, state: int = models.ParticipantInfo.ACTIVE, metadata: str = ""
) -> models.ParticipantInfo:
    info = models.ParticipantInfo(sid=sid, identity=identity, state=state, metadata=metadata)  # type: ignore[arg-type]
    info.tracks.extend(tracks)
    return info


def video(sid: str, *, muted: bool = False, source: int = models.TrackSource.CAMERA) -> models.TrackInfo:
    return models.TrackInfo(
        sid=sid,
        type=models.TrackType.VIDEO,
        name="cam",
        source=source,  # type: ignore[arg-type]
        width=640,
        height=360,
        muted=muted,
        mime_type="video/VP8",
    )


def recording_room() -> tuple[rtc.Room, list[tuple[object, ...]]]:
    room = rtc.Room()
    events: list[tuple[object, ...]] = []
    for name in (
        "participant_connected",
        "participant_disconnected",
        "track_published",
        "track_unpublished",
        "track_muted",
        "track_unmuted",
        "participant_metadata_changed",
    ):
        room.on(name, lambda *args, _name=name: events.append((_name, *args)))
    return room, events


def test_join_publish_mute_unpublish_leave_sequence() -> None:
    room, events = recording_room()
    room._session.on_participant_update([participant("PA_1", "alice")])
    room._session.on_participant_update([participant("PA_1", "alice", video("TR_1"))])
    room._session.on_participant_update([participant("PA_1", "alice", video("TR_1", muted=True), metadata="m")])
    room._session.on_participant_update([participant("PA_1", "alice", video("TR_1"), metadata="m")])
    alice = room.remote_participants["alice"]
    publication = alice.track_publications["TR_1"]
    assert publication.kind == rtc.TrackKind.KIND_VIDEO and publication.source == rtc.TrackSource.SOURCE_CAMERA
    assert not publication.subscribed and publication.track is None
    room._session.on_participant_update([participant("PA_1", "alice", metadata="m")])
    room._session.on_participant_update([participant("PA_1", "alice", state=models.ParticipantInfo.DISCONNECTED)])
    names = [event[0] for event in events]
    assert names == [
        "participant_connected",
        "track_published",
        "participant_metadata_changed",
        "track_muted",
        "track_unmuted",
        "track_unpublished",
        "participant_disconnected",
    ]
    assert events[1][1:] == (publication, alice)  # track_published(publication, participant)
    assert events[3][1:] == (alice, publication)  # track_muted(participant, publication)
    assert "alice" not in room.remote_participants


def test_odd_updates_are_tolerated() -> None:
    room, events = recording_room()
    # leaving before ever being seen, repeated updates, a stale sid for a known identity
    room._session.on_participant_update([participant("PA_9", "ghost", state=models.ParticipantInfo.DISCONNECTED)])
    room._session.on_participant_update([participant("PA_1", "bob", video("TR_1"))] * 3)
    room._session.on_participant_update([participant("PA_0", "bob", state=models.ParticipantInfo.DISCONNECTED)])
    room._session.on_participant_update([participant("", "", video(""))])
    room._session.on_remote_video_ended("TR_unknown")
    assert "bob" in room.remote_participants
    assert [event[0] for event in events].count("track_published") == 2  # bob's TR_1 and the nameless one
    assert [event[0] for event in events].count("participant_disconnected") == 0
