"""What each signal request from a client does to its participant.

Every handler bounds the work one request can cause (see ``limits``) and
answers a refusal in the form the official SDKs match: a RequestResponse that
names the reason and, for add_track, the cid.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from livekit.protocol import models as pb_models
from livekit.protocol import rtc as pb_rtc

from kitewire.transport import IceCandidateInit

from .events import log_event, log_refusal
from .ids import TRACK_PREFIX, new_id
from .limits import (
    MAX_CANDIDATE_BYTES,
    MAX_CANDIDATES_PER_SESSION,
    MAX_LAYERS,
    MAX_SIDS_PER_REQUEST,
    add_track_problem,
    metadata_update_problem,
    refusal,
)
from .subscription_permissions import permission_problem
from .uptrack import quality_to_layer, stream_of_source

if TYPE_CHECKING:
    from .participant import Participant

__all__ = ["MAX_TRACKS_PER_PARTICIPANT", "dispatch", "refuse"]

logger = logging.getLogger("kitewire.server")

#: Tracks one participant may publish or have waiting for media at once.
MAX_TRACKS_PER_PARTICIPANT = 32
_UNSUPPORTED_TYPE = pb_rtc.RequestResponse.UNSUPPORTED_TYPE


def _handle_add_track(participant: Participant, request: pb_rtc.AddTrackRequest) -> None:
    """Accept a track to publish (TrackPublished with a server-minted sid) or refuse it."""
    problem = _add_track_problem(participant, request)
    if problem is not None:
        reason, code = problem
        refuse(participant, "add_track", reason, code, add_track_cid=request.cid)
        return
    waiting = participant.pending_tracks.get(request.cid)
    if waiting is not None:
        # The same announcement again (a client retrying): the same answer.
        _track_published(participant, request.cid, waiting)
        return
    if request.sid:
        own = participant.published.get(request.sid)
        if own is not None:
            # livekit's meaning: another codec for a track already published; answer with that track.
            _track_published(participant, request.cid, own.info)
            return
    info = pb_models.TrackInfo()
    # The server names tracks: a client may only reclaim a sid it published itself (rejoining).
    info.sid = request.sid or new_id(TRACK_PREFIX)
    info.type = request.type
    info.name = request.name
    info.muted = request.muted
    info.width = request.width
    info.height = request.height
    info.source = request.source
    info.simulcast = len(request.layers) > 1
    info.layers.extend(request.layers)
    # livekit groups a camera with its microphone, a screen with its audio (subscribers lip-sync a stream)
    info.stream = request.stream or stream_of_source(request.source)
    info.encryption = request.encryption
    _copy_track_features(request, info)
    for codec in request.simulcast_codecs:
        if codec.codec:
            entry = info.codecs.add()
            entry.mime_type = codec.codec if "/" in codec.codec else f"video/{codec.codec}"
            entry.layers.extend(codec.layers or request.layers)
    participant.pending_tracks[request.cid] = info
    _track_published(participant, request.cid, info)


# AddTrackRequest fields the TrackInfo keeps under the same name (frame_metadata_features is the
# newer protocol's name of packet_trailer_features; whichever the installed protocol has is kept).
_KEPT_TRACK_FIELDS = (
    "disable_dtx",
    "stereo",
    "disable_red",
    "audio_features",
    "backup_codec_policy",
    "packet_trailer_features",
    "frame_metadata_features",
)
_MAX_FEATURES = 16
_SHARED_TRACK_FIELDS = tuple(
    name
    for name in _KEPT_TRACK_FIELDS
    if name in pb_rtc.AddTrackRequest.DESCRIPTOR.fields_by_name
    and name in pb_models.TrackInfo.DESCRIPTOR.fields_by_name
)


def _copy_track_features(request: pb_rtc.AddTrackRequest, info: pb_models.TrackInfo) -> None:
    """Keep what the publisher said about its track (DTX, stereo, audio features, frame metadata) in the TrackInfo."""
    for name in _SHARED_TRACK_FIELDS:
        value = getattr(request, name)
        if isinstance(value, (bool, int)):
            setattr(info, name, value)
        else:
            # Feature lists name enum values: each once, a handful at most (every TrackInfo goes to the whole room).
            getattr(info, name).extend(list(dict.fromkeys(value))[:_MAX_FEATURES])


def _add_track_problem(participant: Participant, request: pb_rtc.AddTrackRequest) -> tuple[str, int] | None:
    """Why ``request`` is refused, with the RequestResponse reason; None when it is accepted."""
    if not participant.can_publish:
        return "token does not allow publishing (canPublish=false)", pb_rtc.RequestResponse.NOT_ALLOWED
    too_big = add_track_problem(request)
    if too_big is not None:
        return too_big, pb_rtc.RequestResponse.LIMIT_EXCEEDED
    if request.type not in (pb_models.AUDIO, pb_models.VIDEO):
        return f"add_track: expected an audio or video track, got type {request.type}", _UNSUPPORTED_TYPE
    if request.source not in pb_models.TrackSource.values():
        return f"add_track: expected a known track source, got {request.source}", _UNSUPPORTED_TYPE
    sources = participant.grant.can_publish_sources
    source_name = pb_models.TrackSource.Name(request.source).lower()
    if sources and source_name not in sources:
        return f"token does not allow publishing source {source_name}", pb_rtc.RequestResponse.NOT_ALLOWED
    if not request.cid:
        return "add_track: expected a cid, got ''", pb_rtc.RequestResponse.NOT_ALLOWED
    if request.cid in participant.pending_tracks or request.sid in participant.published:
        return None
    if request.sid and not participant.room.claimable_track_sid(participant.identity, request.sid):
        return (
            f"add_track: sid {request.sid!r} is not a track this participant published",
            pb_rtc.RequestResponse.NOT_FOUND,
        )
    if len(participant.pending_tracks) + len(participant.published) >= MAX_TRACKS_PER_PARTICIPANT:
        return (
            f"add_track: at most {MAX_TRACKS_PER_PARTICIPANT} tracks per participant",
            pb_rtc.RequestResponse.LIMIT_EXCEEDED,
        )
    return None


def _track_published(participant: Participant, cid: str, info: pb_models.TrackInfo) -> None:
    response = pb_rtc.SignalResponse()
    response.track_published.cid = cid
    response.track_published.track.CopyFrom(info)
    participant.send(response)


# The official SDKs (livekit 1.2.1) start waiting for a RequestResponse only after
# their request is on its way: a refusal answered within a millisecond, as over
# loopback, can come first and is dropped, and the call then hangs for its 5 s
# time-out (2 of 15 oversized set_metadata calls here). A short wait costs
# nothing a user can see. Accepted updates are answered at once, after their
# ParticipantUpdate, which already takes long enough.
_ANSWER_DELAY_SECONDS = 0.02


def answer(participant: Participant, response: pb_rtc.SignalResponse) -> None:
    """Send ``response`` (a refusing RequestResponse) a moment from now: see _ANSWER_DELAY_SECONDS."""
    asyncio.get_running_loop().call_later(_ANSWER_DELAY_SECONDS, participant.send, response)


def refuse(
    participant: Participant,
    what: str,
    reason: str,
    code: int = pb_rtc.RequestResponse.NOT_ALLOWED,
    *,
    request_id: int = 0,
    add_track_cid: str = "",
) -> None:
    """Log a refused request and answer it with a RequestResponse naming ``reason``."""
    log_refusal(participant.room.name, participant.identity, what, reason)
    answer(participant, refusal(reason, code, request_id=request_id, add_track_cid=add_track_cid))


def _handle_subscription(participant: Participant, request: pb_rtc.UpdateSubscription) -> None:
    sids = list(request.track_sids)
    for participant_tracks in request.participant_tracks:
        sids.extend(participant_tracks.track_sids)
    if len(sids) > MAX_SIDS_PER_REQUEST:
        refuse(
            participant,
            "subscription",
            f"subscription: expected at most {MAX_SIDS_PER_REQUEST} track sids, got {len(sids)}",
            pb_rtc.RequestResponse.LIMIT_EXCEEDED,
        )
        return
    if request.subscribe and not participant.can_subscribe:
        refuse(participant, "subscription", "token does not allow subscribing (canSubscribe=false)")
        return
    participant.set_subscribed(sids, request.subscribe)


def _handle_track_setting(participant: Participant, setting: pb_rtc.UpdateTrackSettings) -> None:
    if len(setting.track_sids) > MAX_SIDS_PER_REQUEST:
        refuse(
            participant,
            "track_setting",
            f"track_setting: expected at most {MAX_SIDS_PER_REQUEST} track sids, got {len(setting.track_sids)}",
            pb_rtc.RequestResponse.LIMIT_EXCEEDED,
        )
        return
    for sid in setting.track_sids:
        down = participant.subscriptions.get(sid)
        if down is None:
            continue
        down.disabled = setting.disabled or setting.quality == pb_models.OFF
        if setting.width > 0 or setting.height > 0:
            layer = down.track.layer_for_size(setting.width, setting.height)
        else:
            layer = quality_to_layer(setting.quality)
        down.set_desired_layer(layer)


async def dispatch(participant: Participant, request: pb_rtc.SignalRequest) -> bool:
    """Handle one request; True when the client asked to leave."""
    kind = request.WhichOneof("message")
    if kind == "offer":
        if not participant.context.media_available:
            raise NotImplementedError("media transport")
        await participant.handle_offer(request.offer)
    elif kind == "answer":
        await participant.handle_answer(request.answer)
    elif kind == "trickle":
        await _handle_trickle(participant, request.trickle)
    elif kind == "add_track":
        _handle_add_track(participant, request.add_track)
    elif kind == "mute":
        _handle_mute(participant, request.mute)
    elif kind == "subscription":
        _handle_subscription(participant, request.subscription)
    elif kind == "track_setting":
        _handle_track_setting(participant, request.track_setting)
    elif kind == "update_layers":
        track = participant.published.get(request.update_layers.track_sid)
        if track is not None and len(request.update_layers.layers) <= MAX_LAYERS:
            del track.info.layers[:]
            track.info.layers.extend(request.update_layers.layers)
    elif kind == "leave":
        return True
    elif kind == "ping":
        response = pb_rtc.SignalResponse()
        response.pong = request.ping
        participant.send(response)
    elif kind == "ping_req":
        response = pb_rtc.SignalResponse()
        response.pong_resp.last_ping_timestamp = request.ping_req.timestamp
        response.pong_resp.timestamp = int(time.time() * 1000)
        participant.send(response)
    elif kind == "update_metadata":
        _handle_update_metadata(participant, request.update_metadata)
    elif kind == "subscription_permission":
        _handle_subscription_permission(participant, request.subscription_permission)
    elif kind in ("publish_data_track_request", "unpublish_data_track_request"):
        _refuse_data_track(participant, request)
    # sync_state, simulate, ...: accepted and ignored.
    return False


async def _handle_trickle(participant: Participant, trickle: pb_rtc.TrickleRequest) -> None:
    if not trickle.candidateInit:
        return
    if len(trickle.candidateInit) > MAX_CANDIDATE_BYTES:
        _ignore_candidate(
            participant,
            f"expected an ICE candidate of at most {MAX_CANDIDATE_BYTES} bytes, got {len(trickle.candidateInit)}",
        )
        return
    if participant.remote_candidates >= MAX_CANDIDATES_PER_SESSION:
        if participant.remote_candidates == MAX_CANDIDATES_PER_SESSION:
            log_refusal(
                participant.room.name,
                participant.identity,
                "trickle",
                f"at most {MAX_CANDIDATES_PER_SESSION} ICE candidates per session; later ones ignored",
            )
        participant.remote_candidates += 1
        return
    participant.remote_candidates += 1
    try:
        candidate = IceCandidateInit.from_json(trickle.candidateInit)
        if candidate.candidate:
            await participant.add_remote_candidate(trickle.target, candidate)
    except ValueError as exc:
        # One unusable candidate (browsers send mDNS names, for one) is no
        # reason to drop a client; the others may still connect.
        _ignore_candidate(participant, str(exc))


def _ignore_candidate(participant: Participant, reason: str) -> None:
    """Count an unusable candidate; only a session's first is logged (a client may send dozens)."""
    participant.ignored_candidates += 1
    if participant.ignored_candidates == 1:
        log_event(
            "candidate_ignored",
            room=participant.room.name,
            identity=participant.identity,
            reason=reason,
            note="later ones of this session are not logged",
        )


def _handle_mute(participant: Participant, mute: pb_rtc.MuteTrackRequest) -> None:
    participant.set_track_muted(mute.sid, mute.muted, tell_client=False)


def _refuse_data_track(participant: Participant, request: pb_rtc.SignalRequest) -> None:
    """Data tracks are not implemented: say so at once (the SDK would wait 10 s for an answer).

    The refusal names the track by its publisher handle, which is what the SDK matches."""
    reason = "data tracks are not supported by this server"
    log_refusal(participant.room.name, participant.identity, "data_track", reason)
    response = refusal(reason, _UNSUPPORTED_TYPE)
    if request.WhichOneof("message") == "publish_data_track_request":
        response.request_response.publish_data_track.pub_handle = request.publish_data_track_request.pub_handle
    else:
        response.request_response.unpublish_data_track.pub_handle = request.unpublish_data_track_request.pub_handle
    answer(participant, response)


def _handle_update_metadata(participant: Participant, update: pb_rtc.UpdateParticipantMetadata) -> None:
    # The official SDKs wait for a RequestResponse carrying their request_id, refused or not.
    if not participant.grant.can_update_own_metadata:
        refuse(
            participant, "update_metadata", "token does not allow updating own metadata", request_id=update.request_id
        )
        return
    problem = metadata_update_problem(update, participant.attributes)
    if problem is not None:
        refuse(
            participant, "update_metadata", problem, pb_rtc.RequestResponse.LIMIT_EXCEEDED, request_id=update.request_id
        )
        return
    participant.update_state(name=update.name, metadata=update.metadata, attributes=dict(update.attributes))
    if update.request_id:
        done = pb_rtc.SignalResponse()
        done.request_response.request_id = update.request_id
        done.request_response.reason = pb_rtc.RequestResponse.OK
        # At once: the update to everyone went out first, and delaying this answer behind
        # it lets the SDKs see their own update before their request resolves (old == new).
        participant.send(done)


def _handle_subscription_permission(participant: Participant, request: pb_rtc.SubscriptionPermission) -> None:
    """Who may subscribe to this participant's tracks; the server enforces it (``set_subscription_permissions``)."""
    problem = permission_problem(request)
    if problem is not None:
        refuse(participant, "subscription_permission", problem, pb_rtc.RequestResponse.LIMIT_EXCEEDED)
        return
    participant.set_subscription_permissions(request)
