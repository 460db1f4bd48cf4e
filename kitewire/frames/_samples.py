"""Sample-level helpers: bit depth changes and chroma sample repetition."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import numpy.typing as npt

AnyArray = npt.NDArray[Any]

# numpy's stubs reject the (uint8 in, uint16 out, dtype=) ufunc form that does
# the widening in one pass, so it is called untyped
_left_shift = cast(Any, np.left_shift)
_multiply = cast(Any, np.multiply)


def widen_to_10bit(source: AnyArray, target: AnyArray) -> None:
    """Write 8-bit ``source`` samples into uint16 ``target`` as 10-bit words (a 2-bit shift)."""
    _left_shift(source, 2, out=target, dtype=np.uint16)


def repeat_samples(plane: AnyArray, factor_x: int, factor_y: int, target: AnyArray) -> None:
    """Fill uint8 ``target`` (exactly ``factor_y`` x ``factor_x`` the size of ``plane``) by repetition.

    Doubling columns writes each sample times 257 into a 16-bit view of the
    target (both bytes equal the sample); doubling rows copies whole rows.
    Both run at memory speed, unlike general resize code.
    """
    rows, columns = plane.shape
    if factor_x == 2:
        pairs = target.view(np.uint16).reshape(rows, factor_y, columns)
        _multiply(plane, 257, out=pairs[:, 0, :], dtype=np.uint16)
        for copy_index in range(1, factor_y):
            pairs[:, copy_index, :] = pairs[:, 0, :]
    else:
        target.reshape(rows, factor_y, columns)[...] = plane[:, None, :]
