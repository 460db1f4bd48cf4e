"""Every engine command the in-process RtcEngine has, RemoteEngine forwards to the media process:
a command added to one and not the other would work only with KITEWIRE_MEDIA_PROCESS=0."""

from __future__ import annotations

import inspect

from kitewire.engine.handle import EngineHandle
from kitewire.engine.process import RemoteEngine
from kitewire.engine.process.child import _HostedEngine
from kitewire.engine.session import RtcEngine


def _commands(cls: type) -> set[str]:
    # the WireListener entry points (on_*) are the wire client's way in, not commands
    return {name for name, _ in inspect.getmembers(cls, callable) if not name.startswith(("_", "on_"))}


def _handle_members() -> set[str]:
    return {name for name in vars(EngineHandle) if not name.startswith("_")} | set(
        getattr(EngineHandle, "__annotations__", {})
    )


def test_every_rtc_engine_command_is_on_remote_engine() -> None:
    missing = _commands(RtcEngine) - _commands(RemoteEngine)
    assert not missing, f"RemoteEngine does not forward {sorted(missing)}"


def test_the_handle_is_what_both_engines_have() -> None:
    members = _handle_members()
    assert {"publish_audio", "route_remote_audio", "publish_data", "update_metadata", "get_stats"} <= members
    for cls in (RtcEngine, RemoteEngine):
        absent = {name for name in members if name != "join" and not hasattr(cls, name)}
        assert not absent, f"{cls.__name__} lacks {sorted(absent)}"


def test_commands_with_media_have_a_child_side() -> None:
    # publishing hands back a pipeline that cannot cross: the media process keeps it and
    # returns the TrackInfo, so these must be the child's own methods, not RtcEngine's
    for name in ("connect", "publish_video", "unpublish_video", "publish_audio", "unpublish_audio"):
        assert name in vars(_HostedEngine), f"the media process runs {name} as RtcEngine's own"
