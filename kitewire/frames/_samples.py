"""Bit-depth changes between 8-bit samples and I010's 10-bit words."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import numpy.typing as npt

AnyArray = npt.NDArray[Any]

# numpy's stubs reject the (uint8 in, uint16 out, dtype=) ufunc form that does
# the widening in one pass, so it is called untyped
_left_shift = cast(Any, np.left_shift)


def widen_to_10bit(source: AnyArray, target: AnyArray) -> None:
    """Write 8-bit ``source`` samples into uint16 ``target`` as 10-bit words (a 2-bit shift)."""
    _left_shift(source, 2, out=target, dtype=np.uint16)
