"""mflag_monai.data.subset: the fixed datalist subsets the diagnostics and the BatchNorm re-estimation run over."""

from __future__ import annotations

from mflag_monai.data.subset import fixed_subset, select_split


def test_subset_and_split_selection() -> None:
    data = list(range(10))
    assert fixed_subset(data, 4) == [0, 2, 5, 7] == fixed_subset(data, 4)
    assert fixed_subset(data, 0) == data and fixed_subset(data, 20) == data
    datalist = {"training": [1, 2, 3], "validation": [4], "test": [5, 6]}
    assert select_split(datalist, "validation") == ("training", [1, 2, 3])
    assert select_split(datalist, "test") == ("test", [5, 6])
    assert select_split(datalist, "validation", fallback=None) == ("validation", [4])
