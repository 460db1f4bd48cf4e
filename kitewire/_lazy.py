"""Package namespaces that import their submodules on first use.

With the engine in a media process, the application's side of kitewire needs only a
few light modules of ``kitewire.engine``, ``kitewire.transport`` and ``kitewire.media``;
their packages' eager imports would load PyAV, aiortc and OpenSSL into every
application (over 100 MB of RSS) for nothing. A package lists its public names with
the submodule that defines each: ``from kitewire.engine import RtcEngine`` still
works, and imports ``kitewire.engine.session`` (and what it needs) at that moment.
Type checkers see the names through the package's ``if TYPE_CHECKING:`` imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` whose name ``N`` lives in submodule ``exports[N]``
    (relative, e.g. ``".session"``)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        # later lookups find the name in the package without coming back here
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(vars(importlib.import_module(package))))

    return __getattr__, __dir__
