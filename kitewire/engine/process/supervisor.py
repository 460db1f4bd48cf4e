"""The application's side of its media process: start it, talk to it, notice its end.

One media process serves every Room of the application (starting one costs the
imports of PyAV, aiortc and numpy — see DESIGN.md for the figures), started on the
first connect and again after one died. :class:`MediaProcess` owns the control
channel: its reader thread routes call results to the awaiting coroutine's loop,
events and frames to their :class:`~kitewire.engine.process.RemoteEngine`, and on
EOF tells every engine that the process is gone, with its exit status.

The child is started from one long-lived launcher thread, because
``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child ends, and a
Room may connect from a thread that ends long before the application does.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

from kitewire.engine.handle import EngineError

from .channel import Channel, Message
from .frame_link import FrameInfo, FrameLink

if TYPE_CHECKING:
    from .remote_engine import RemoteEngine

__all__ = ["MediaProcess"]

logger = logging.getLogger("kitewire.engine.process")

READY_TIMEOUT = 60.0
_LAUNCHER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="kitewire-media-launcher")
_shared_lock = threading.Lock()
_shared: MediaProcess | None = None


def _package_root() -> str:
    import kitewire

    return os.path.dirname(os.path.dirname(os.path.abspath(kitewire.__file__)))


def _spawn(child_fd: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    root = _package_root()
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    argv = [sys.executable, "-m", "kitewire.engine.process.child", str(child_fd), str(os.getpid())]
    # stdout stays free for the application (a pipe it reads to EOF); errors go to its stderr
    return subprocess.Popen(argv, pass_fds=(child_fd,), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


class MediaProcess:
    """One running media process and its control channel (see the module docstring)."""

    def __init__(self) -> None:
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.process = _LAUNCHER.submit(_spawn, child_sock.fileno()).result()
        finally:
            child_sock.close()
        self.pid = self.process.pid
        # a forked copy of the application must not share this process's channel
        self.owner_pid = os.getpid()
        self.channel = Channel(parent_sock)
        self.link = FrameLink(self.channel)
        self._engine_ids = itertools.count(1)
        self._call_ids = itertools.count(1)
        self._engines: dict[int, RemoteEngine] = {}
        self._pending: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.dead = False
        self.exit_detail = ""
        self.channel.start_reader(self._on_message, self._on_closed, f"kitewire-media-{self.pid}")

    @classmethod
    def shared(cls) -> MediaProcess:
        """The application's media process, started (and waited for) if none is running.
        Blocking: call it from a worker thread. Raises EngineError."""
        global _shared
        with _shared_lock:
            current = _shared
            if current is None or current.dead or current.owner_pid != os.getpid():
                current = _shared = cls()
        current.wait_ready()
        return current

    def wait_ready(self) -> None:
        """Block until the child reported ready; EngineError if it did not."""
        if not self._ready.wait(READY_TIMEOUT):
            self.kill()
            raise EngineError(f"the media process did not start within {READY_TIMEOUT:.0f} s")
        if self.dead:
            raise EngineError(f"the media process could not start: {self.exit_detail}")

    # -- engines and calls ---------------------------------------------------------

    def register(self, engine: RemoteEngine) -> int:
        """A new engine session in the child for ``engine``; returns its id."""
        engine_id = next(self._engine_ids)
        with self._lock:
            if self.dead:
                raise EngineError(f"the media process is gone: {self.exit_detail}")
            self._engines[engine_id] = engine
        if not self.channel.post(("open", engine_id)):
            raise EngineError(f"the media process is gone: {self.exit_detail or 'channel closed'}")
        return engine_id

    def unregister(self, engine_id: int) -> None:
        """Forget an engine session (its child side is dropped too)."""
        with self._lock:
            self._engines.pop(engine_id, None)
        self.channel.post(("close", engine_id))

    async def call(self, engine_id: int, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run ``name`` on the child's engine ``engine_id``; its result or exception."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        call_id = next(self._call_ids)
        with self._lock:
            if self.dead:
                raise EngineError(f"the media process is gone: {self.exit_detail}")
            self._pending[call_id] = (loop, future)
        try:
            if not self.channel.post(("call", engine_id, call_id, name, args, kwargs)):
                raise EngineError(f"the media process is gone: {self.exit_detail or 'channel closed'}")
            return await future
        finally:
            with self._lock:
                self._pending.pop(call_id, None)

    def post(self, message: Message) -> bool:
        """Send a message that needs no answer."""
        return self.channel.post(message)

    # -- reader thread -------------------------------------------------------------

    def _on_message(self, message: Message) -> None:
        kind = message[0]
        if kind == "frame":
            engine_id, track_sid = message[1]
            engine = self._engines.get(engine_id)
            info: FrameInfo = message[3]
            frame = self.link.read(message[2], info)
            if engine is not None and frame is not None:
                engine.deliver_frame(track_sid, frame, info)
        elif kind in ("result", "error"):
            with self._lock:
                pending = self._pending.pop(message[1], None)
            if pending is not None:
                _settle(pending[0], pending[1], kind == "error", message[2])
        elif kind in ("event", "sent", "audio"):
            engine = self._engines.get(message[1])
            if engine is not None:
                engine.deliver(message)
        elif kind == "ready":
            self._ready.set()
        elif not self.link.handle(message):
            logger.warning("media process sent an unknown message %r", kind)

    def _on_closed(self) -> None:
        self.exit_detail = self._reap()
        with self._lock:
            self.dead = True
            engines = list(self._engines.values())
            self._engines.clear()
            pending = list(self._pending.values())
            self._pending.clear()
        self._ready.set()
        error = EngineError(f"the media process is gone: {self.exit_detail}")
        for loop, future in pending:
            _settle(loop, future, True, error)
        for engine in engines:
            engine.process_died(self.exit_detail)
        self.link.close()

    def _reap(self) -> str:
        try:
            code = self.process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.kill()
            return "its control channel closed (the process was killed)"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return f"the media process (pid {self.pid}) was killed by {name}"
        return f"the media process (pid {self.pid}) exited with status {code}"

    # -- ending ----------------------------------------------------------------------

    def kill(self) -> None:
        """End the child now."""
        with contextlib.suppress(OSError):
            self.process.kill()
        self.channel.close()

    def close(self) -> None:
        """Let the child leave its rooms and exit (EOF on its socket)."""
        self.channel.close()


def _settle(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], failed: bool, value: Any) -> None:
    def settle() -> None:
        if future.done():
            return
        if failed:
            future.set_exception(value if isinstance(value, BaseException) else EngineError(str(value)))
        else:
            future.set_result(value)

    with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
        loop.call_soon_threadsafe(settle)


def current() -> MediaProcess | None:
    """The running shared media process, if any (for tests and benchmarks)."""
    return _shared if _shared is not None and not _shared.dead else None


@atexit.register
def _close_at_exit() -> None:
    process = _shared
    # a forked copy must not shut the socket it shares with the application
    if process is not None and not process.dead and process.owner_pid == os.getpid():
        process.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.process.wait(timeout=5.0)
