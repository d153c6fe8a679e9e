"""The first and last byte of each cell of an arrow string column, read from the array's own buffers.

Vectorised checks on millions of cells (a formula's first character, whitespace that needs trimming) look
only at a cell's ends: reading them at the offsets costs no copy of the text, where slicing or trimming
every cell copies all of it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa


def end_bytes(array: pa.Array) -> tuple[Any, Any, Any]:
    """``(first, last, filled)`` for a string or large_string array: numpy arrays of each cell's first and last
    byte (0 where the cell is empty) and whether it has any byte. Null cells read as empty."""
    size = len(array)
    _, offsets_buffer, data_buffer = array.buffers()
    if size == 0 or offsets_buffer is None or data_buffer is None or data_buffer.size == 0:
        nothing = np.zeros(size, dtype=np.uint8)
        return nothing, nothing, np.zeros(size, dtype=bool)
    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets: Any = np.frombuffer(offsets_buffer, dtype=width)[array.offset:array.offset + size + 1]
    data: Any = np.frombuffer(data_buffer, dtype=np.uint8)
    starts, ends = offsets[:-1], offsets[1:]
    filled = ends > starts
    if array.null_count:
        filled &= array.is_valid().to_numpy(zero_copy_only=False)
    # an empty cell's offset may be the end of the data (clipped): its byte is another cell's, so zeroed
    first = np.where(filled, data.take(starts, mode="clip"), 0).astype(np.uint8)
    last = np.where(filled, data.take(ends - 1, mode="clip"), 0).astype(np.uint8)
    return first, last, filled
