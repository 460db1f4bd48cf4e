"""A small synchronous event emitter with livekit.rtc's ``on``/``once``/``off``/``emit``."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

logger = logging.getLogger("kitewire.rtc")

EventName = TypeVar("EventName")
Callback = Callable[..., Any]


def _positional_capacity(callback: Callback) -> int | None:
    """How many positional arguments ``callback`` accepts; None means any number."""
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return None
    count = 0
    for parameter in parameters:
        if parameter.kind == parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


class EventEmitter(Generic[EventName]):
    """Registry of callbacks per event name.

    Callbacks run synchronously, in registration order, when :meth:`emit` is
    called. A callback may declare fewer positional parameters than the event
    carries; it then receives only the leading arguments (livekit allows
    ``@room.on("track_subscribed") def f(track): ...``).
    """

    def __init__(self) -> None:
        # a dict keyed by callback keeps registration order and ignores duplicates
        self._events: dict[EventName, dict[Callback, None]] = {}

    def emit(self, event: EventName, *args: Any) -> None:
        """Call every callback registered for ``event`` with ``args``.

        An exception raised by one callback is logged and does not stop the others,
        except a ``TypeError``, which is raised to the caller of ``emit`` as livekit's
        emitter does: it usually means a handler's signature does not fit the event,
        a bug better seen at once than logged.
        """
        for callback in list(self._events.get(event, ())):
            capacity = _positional_capacity(callback)
            call_args = args if capacity is None else args[:capacity]
            try:
                callback(*call_args)
            except TypeError:
                raise
            except Exception:
                logger.exception("callback for event %r raised", event)

    def on(self, event: EventName, callback: Callback | None = None) -> Callback:
        """Register ``callback`` for ``event``; without a callback, return a decorator."""
        if callback is None:

            def decorator(function: Callback) -> Callback:
                self.on(event, function)
                return function

            return decorator
        if inspect.iscoroutinefunction(callback):
            raise ValueError(
                f"expected a synchronous callback for event {event!r}, got the coroutine "
                f"function {getattr(callback, '__qualname__', callback)!r}; start a task "
                "with asyncio.create_task inside a synchronous callback instead"
            )
        self._events.setdefault(event, {})[callback] = None
        return callback

    def once(self, event: EventName, callback: Callback | None = None) -> Callback:
        """Register ``callback`` to run on the next ``event`` only; without one, a decorator."""
        if callback is None:

            def decorator(function: Callback) -> Callback:
                self.once(event, function)
                return function

            return decorator
        capacity = _positional_capacity(callback)

        def run_once(*args: Any) -> None:
            self.off(event, run_once)
            callback(*(args if capacity is None else args[:capacity]))

        return self.on(event, run_once)

    def off(self, event: EventName, callback: Callback) -> None:
        """Unregister ``callback`` from ``event``; unknown callbacks are ignored."""
        callbacks = self._events.get(event)
        if callbacks is not None:
            callbacks.pop(callback, None)
