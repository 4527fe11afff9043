"""The history as an interactions file that ``offers benchmark`` reads back as it is."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from recsys.errors import DataError
from recsys.validation import load_dataset
from training.benchmark import read_interactions
from training.export_interactions import COLUMNS, export_interactions


def test_the_positive_responses_are_written_with_their_weights_and_read_back(sample: Path, tmp_path: Path) -> None:
    data = load_dataset(sample).data
    out = tmp_path / "interactions.csv"
    rows = export_interactions(data, out)
    events = data.offer_events
    positive = events[events["event"].isin(["click", "redeem"])]
    assert rows == len(positive) > 0
    written = pd.read_csv(out, dtype={"user": str, "item": str})
    assert tuple(written.columns) == COLUMNS
    assert written["timestamp"].is_monotonic_increasing
    clicks, redeems = (int((positive["event"] == kind).sum()) for kind in ("click", "redeem"))
    assert written["rating"].value_counts().to_dict() == {2.0: clicks, 5.0: redeems}  # InteractionWeights
    first = positive.sort_values("timestamp").iloc[0]
    assert written["timestamp"].iloc[0] == int(pd.Timestamp(first["timestamp"]).timestamp())
    read = read_interactions(out, ",", list(COLUMNS))
    assert len(read) == rows and read.attrs.get("rejected", 0) == 0  # the header is skipped, nothing rejected
    assert set(read["user"]) == set(positive["member_id"].astype(str))


def test_a_history_without_responses_is_refused(sample: Path, tmp_path: Path) -> None:
    data = load_dataset(sample).data
    events = data.offer_events
    quiet = dataclasses.replace(data, offer_events=events[events["event"] == "impression"])
    with pytest.raises(DataError, match="no clicks or redemptions"):
        export_interactions(quiet, tmp_path / "none.csv")
