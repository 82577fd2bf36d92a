"""The frame table schema: column order, dtypes and label validation."""

import pandas as pd
import pytest

from affect_data.schema import FRAME_TABLE_COLUMNS, as_frame_table, empty_frame_table


def rows(**labels):
    meta = {"dataset": "d", "video": ["a", "b"], "frame": [0, 1], "path": "p.jpg", "subject": "s"}
    return pd.DataFrame(meta | {"split": "train"} | labels)


def test_columns_are_ordered_and_missing_labels_added():
    table = as_frame_table(rows(extra=[1, 2], expr=[4, None]))
    assert list(table.columns) == [*FRAME_TABLE_COLUMNS, "extra"]
    assert table["AU1"].isna().all() and str(table["expr"].dtype) == "Int8"
    assert list(empty_frame_table().columns) == list(FRAME_TABLE_COLUMNS)


def test_a_bad_value_names_its_row_even_with_a_duplicated_index():
    table = rows(expr=[1, 9]).set_axis([0, 0])  # e.g. tables concatenated without ignore_index
    with pytest.raises(
        ValueError, match=r"^frame table column 'expr' holds 9 \(video b, frame 1\); allowed: 0\.\.6$"
    ):
        as_frame_table(table)
    with pytest.raises(ValueError, match=r"'valence' holds 1\.5 \(video a, frame 0\)"):
        as_frame_table(rows(valence=[1.5, 0.0]))
    with pytest.raises(ValueError, match="lacks metadata column"):
        as_frame_table(rows().drop(columns="path"))
