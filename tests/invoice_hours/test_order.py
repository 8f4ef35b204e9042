"""One-pass orderings and groupings (``order``, the ticket minimum, validation reasons) equal pandas' own."""

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from tasks.invoice_hours.order import ranks, sort_order
from tasks.invoice_hours.rules import _lowest_id_per_group
from tasks.invoice_hours.validate import _joined_per_row

texts = st.lists(st.one_of(st.none(), st.text(alphabet="ab1~:é-", max_size=4)), max_size=30)


@given(first=texts, second=st.data())
def test_sort_order_is_sort_values(first, second):
    other = second.draw(st.lists(st.integers(0, 3), min_size=len(first), max_size=len(first)))
    frame = pd.DataFrame({"a": pd.Series(first, dtype="str"), "b": other})
    expected = frame.sort_values(["a", "b"], kind="stable", na_position="last").index.to_numpy()
    assert sort_order([frame["a"], frame["b"]]).tolist() == expected.tolist()


@given(values=texts)
def test_ranks_follow_python_string_order(values):
    got = ranks(pd.Series(values, dtype="str"))
    present = sorted({v for v in values if v is not None})
    assert got.tolist() == [present.index(v) if v is not None else len(present) for v in values]


@given(
    rows=st.lists(
        st.tuples(st.integers(0, 3), st.one_of(st.none(), st.sampled_from(["r1", "r10", "r1~0", "r2"])))
    )
)
def test_lowest_id_per_group_is_the_first_row_by_group_and_id(rows):
    group = np.array([g for g, _ in rows], dtype=np.int64)
    ids = pd.Series([i for _, i in rows], dtype="str")
    order = sort_order([group, ids])
    expected = sorted(order[np.unique(group[order], return_index=True)[1]].tolist())
    got = sorted(_lowest_id_per_group(group, ids.to_numpy(dtype=object)).tolist())
    assert got == expected


@given(rows=st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["a", "b", "c; d", ""])), min_size=1))
def test_reasons_joined_per_row_as_groupby_agg(rows):
    phrased = pd.DataFrame(rows, columns=["index", "text"]).astype({"text": "str"}).drop_duplicates()
    expected = phrased.groupby("index", sort=True)["text"].agg("; ".join).rename("reason")
    got = _joined_per_row(phrased["index"].to_numpy(dtype=np.int64), phrased["text"].to_numpy(dtype=object))
    pd.testing.assert_series_equal(got, expected)
