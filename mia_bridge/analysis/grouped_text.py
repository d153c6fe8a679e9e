"""Text per group without a Python call per group: the distinct values of each group, sorted and joined.

The analysis builds every table with vectorised or relational operations so that its cost does not grow
with the number of groups (real tenants have a new SessionId every few records, hence hundreds of thousands
of access contexts). Joining strings per group is the one step pandas can only do with a Python function
per group; here the sorted values are cut into an Arrow list array by their group boundaries and joined
by Arrow's ``binary_join`` in one call.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def join_distinct(groups: np.ndarray, values: pd.Series, n_groups: int, sep: str = ";") -> np.ndarray:
    """For group numbers ``0..n_groups-1``: the distinct non-empty ``values`` of each, sorted, joined by ``sep``
    (``""`` for a group without any). ``groups[i]`` is the group of ``values.iloc[i]``."""
    result = np.full(n_groups, "", dtype=object)
    present = (values.notna() & (values.astype(str) != "")).to_numpy()
    if not present.any():
        return result
    pairs = pd.DataFrame({"group": np.asarray(groups)[present], "value": values[present].astype(str).to_numpy()})
    pairs = pairs.drop_duplicates().sort_values(["group", "value"], kind="stable")
    codes = pairs["group"].to_numpy()
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    offsets = pa.array(np.r_[starts, len(codes)].astype(np.int64), type=pa.int64())
    lists = pa.LargeListArray.from_arrays(offsets, pa.array(pairs["value"].to_numpy(), type=pa.large_string()))
    result[codes[starts]] = pc.binary_join(lists, pa.scalar(sep, type=pa.large_string())).to_numpy(
        zero_copy_only=False)
    return result
