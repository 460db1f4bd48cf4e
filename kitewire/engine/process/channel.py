"""The control socket between the application and its media process.

Messages are tuples pickled with a 4-byte length prefix over a Unix stream socket,
optionally carrying file descriptors (the memfds of frame rings) as SCM_RIGHTS. Both
processes trust each other (the media process is our own child), so pickle is fine;
a length beyond :data:`MAX_MESSAGE_BYTES` is a broken peer and ends the channel.

Sending is synchronous and thread-safe (a capture thread, the event loop and the
reader thread all send), with a timeout so that a peer that stops reading fails the
channel instead of freezing the sender. In the application, receiving runs on a
dedicated reader thread that calls ``on_message`` for every message and ``on_closed``
once at the end: that thread needs the GIL only to unpickle a small tuple, never to
wait for an event loop. The media process owns its loop and reads on it
(:meth:`Channel.start_loop_reader`): each message then costs one wake-up, not two.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import pickle
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final

from google.protobuf import descriptor_pool, message_factory
from google.protobuf import message as pb_message

__all__ = ["MAX_MESSAGE_BYTES", "Channel", "ChannelClosed"]

logger = logging.getLogger("kitewire.engine.process")

MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
_HEADER = struct.Struct("!I")
_MAX_FDS_PER_READ = 16
_READ_SIZE = 1 << 18

Message = tuple[Any, ...]


def _rebuild_protobuf(full_name: str, payload: bytes) -> pb_message.Message:
    descriptor = descriptor_pool.Default().FindMessageTypeByName(full_name)
    message: pb_message.Message = message_factory.GetMessageClass(descriptor)()
    message.ParseFromString(payload)
    return message


class _Pickler(pickle.Pickler):
    # livekit-protocol's generated classes name an unimportable module ("rtc"): protobuf
    # messages travel as their full name and wire bytes instead
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, pb_message.Message):
            return _rebuild_protobuf, (obj.DESCRIPTOR.full_name, obj.SerializeToString())
        return NotImplemented


def dumps(message: Any) -> bytes:
    """Pickle ``message`` (protobuf messages inside it included)."""
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(message)
    return buffer.getvalue()


class ChannelClosed(Exception):
    """The other process is gone or stopped reading."""


class Channel:
    """One end of the control socket (see the module docstring)."""

    def __init__(self, sock: socket.socket, *, send_timeout: float = 10.0) -> None:
        self._sock = sock
        sock.settimeout(send_timeout)
        self._send_lock = threading.Lock()
        self._closed = False
        self._reader: threading.Thread | None = None
        # descriptors that arrived with message bytes, taken in order by take_fd()
        self._fds: deque[int] = deque()

    @property
    def closed(self) -> bool:
        """True once either side closed or the channel failed."""
        return self._closed

    def send(self, message: Message, fds: Sequence[int] = ()) -> None:
        """Send one message (with ``fds`` attached); raises ChannelClosed."""
        body = dumps(message)
        if len(body) > MAX_MESSAGE_BYTES:
            raise ValueError(f"expected a control message of at most {MAX_MESSAGE_BYTES} bytes, got {len(body)}")
        data = _HEADER.pack(len(body)) + body
        with self._send_lock:
            if self._closed:
                raise ChannelClosed("the media channel is closed")
            try:
                if fds:
                    sent = socket.send_fds(self._sock, [data], list(fds))
                    if sent < len(data):
                        self._sock.sendall(data[sent:])
                else:
                    self._sock.sendall(data)
            except OSError as exc:  # includes the send timeout
                self._fail()
                raise ChannelClosed(f"the media channel failed: {exc}") from None

    def post(self, message: Message, fds: Sequence[int] = ()) -> bool:
        """Send without raising; False when the channel is closed."""
        try:
            self.send(message, fds)
        except ChannelClosed:
            return False
        return True

    def take_fd(self) -> int:
        """The next descriptor that arrived (a message that announces one calls this)."""
        if not self._fds:
            raise ValueError("expected a file descriptor with this message, got none")
        return self._fds.popleft()

    def start_reader(self, on_message: Callable[[Message], None], on_closed: Callable[[], None], name: str) -> None:
        """Read messages on a daemon thread until the socket ends."""
        thread = threading.Thread(target=self._read_loop, args=(on_message, on_closed), name=name, daemon=True)
        self._reader = thread
        thread.start()

    def start_loop_reader(
        self, loop: asyncio.AbstractEventLoop, on_message: Callable[[Message], None], on_closed: Callable[[], None]
    ) -> None:
        """Read messages on ``loop`` itself (call from the loop): for a process whose loop is
        its own (the media process), a message then wakes one thread, not a reader and
        then the loop."""
        # a second handle on the socket, without the send timeout (which would make a
        # read wait for data): the loop reads only when the socket is readable
        reader = socket.socket(fileno=os.dup(self._sock.fileno()))
        reader.setblocking(False)
        buffer = bytearray()
        fd = reader.fileno()

        def readable() -> None:
            try:
                data, fds, _, _ = socket.recv_fds(reader, _READ_SIZE, _MAX_FDS_PER_READ)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fds = b"", []
            self._fds.extend(fds)
            if data and self._take_messages(buffer, data, on_message):
                return
            loop.remove_reader(fd)
            reader.close()
            self._end(on_closed)

        loop.add_reader(fd, readable)

    def _take_messages(self, buffer: bytearray, data: bytes, on_message: Callable[[Message], None]) -> bool:
        """Add ``data`` to ``buffer`` and handle every whole message; False when one is over the bound."""
        buffer += data
        while len(buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(buffer)
            if length > MAX_MESSAGE_BYTES:
                logger.error("media channel: a %d-byte message is over the bound; closing", length)
                return False
            if len(buffer) < _HEADER.size + length:
                break
            body = bytes(buffer[_HEADER.size : _HEADER.size + length])
            del buffer[: _HEADER.size + length]
            try:
                on_message(pickle.loads(body))
            except Exception:
                logger.exception("media channel: handling a message failed")
        return True

    def _read_loop(self, on_message: Callable[[Message], None], on_closed: Callable[[], None]) -> None:
        buffer = bytearray()
        try:
            while True:
                try:
                    data, fds, _, _ = socket.recv_fds(self._sock, _READ_SIZE, _MAX_FDS_PER_READ)
                except TimeoutError:
                    continue  # the socket's timeout is for sends; a quiet peer is fine
                self._fds.extend(fds)
                if not data or not self._take_messages(buffer, data, on_message):
                    return
        except OSError:
            return
        finally:
            self._end(on_closed)

    def _end(self, on_closed: Callable[[], None]) -> None:
        with self._send_lock:
            self._fail()
            with contextlib.suppress(OSError):
                self._sock.close()
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        on_closed()

    def _fail(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close both directions; the reader thread (if any) ends and reports ``on_closed``."""
        self._fail()
        reader = self._reader
        if reader is None or reader is threading.current_thread():
            with contextlib.suppress(OSError):
                self._sock.close()
