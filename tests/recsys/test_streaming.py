"""Loading the history in chunks gives what loading it whole gives: the same training matrix, features,
holdout, rejects and reports, on generated data and on a dirty copy of it."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys.dataset import LoyaltyData
from recsys.errors import DataError, TooManyRejectsError
from recsys.interactions import InteractionWeights, build_training_set, evidence, holdout_positives
from recsys.profiles import member_profiles
from recsys.streaming import SeenKeys, load_dataset_chunked
from recsys.validation import LoadResult, load_dataset
from training.generate import generate
from training.train import holdout_cut, redeemed_counts

ROW_KEYS = {"offer_events": "event_id", "stays": "stay_id", "dining": "dining_id", "partner_activity": "activity_id"}
CHUNK = 499  # rows: many chunks, none aligned with anything


@pytest.fixture(scope="module")
def sample_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dirs = {}
    for fmt in ("csv", "parquet"):
        out = tmp_path_factory.mktemp(f"history-{fmt}")
        generate(out, members=300, seed=11, as_of=date(2026, 10, 1), fmt=fmt, show_progress=False)
        dirs[fmt] = out
    return dirs


def _same_matrix(left: sp.csr_matrix | None, right: sp.csr_matrix | None) -> None:
    assert left is not None and right is not None
    assert left.shape == right.shape and left.dtype == right.dtype
    left, right = sp.csr_matrix(left), sp.csr_matrix(right)
    left.sort_indices()
    right.sort_indices()
    np.testing.assert_array_equal(left.indptr, right.indptr)
    np.testing.assert_array_equal(left.indices, right.indices)
    np.testing.assert_array_equal(left.data, right.data)  # bit for bit, not approximately


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({c: "str" for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)})


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_chunked_history_trains_on_the_same_matrix_and_features(sample_dirs: dict[str, Path], fmt: str) -> None:
    whole = load_dataset(sample_dirs[fmt]).data
    chunked = load_dataset_chunked(sample_dirs[fmt], chunk_rows=CHUNK).data
    assert len(chunked.offer_events) == len(whole.offer_events) > 10 * CHUNK
    for name, key in ROW_KEYS.items():
        mine_frame, their_frame = getattr(chunked, name), getattr(whole, name)
        assert isinstance(mine_frame["member_id"].dtype, pd.CategoricalDtype)  # kept compact
        assert key not in mine_frame  # the row key is not kept
        pd.testing.assert_frame_equal(_as_text(mine_frame), their_frame.drop(columns=key))
    pd.testing.assert_frame_equal(chunked.members, whole.members)

    cut, end = holdout_cut(chunked, 28)
    assert (cut, end) == holdout_cut(whole, 28)
    for until in (cut, None):
        mine, my_space = build_training_set(chunked, until=until)
        theirs, their_space = build_training_set(whole, until=until)
        assert mine.interactions.nnz > 500
        _same_matrix(mine.interactions, theirs.interactions)
        _same_matrix(mine.member_features, theirs.member_features)
        _same_matrix(mine.offer_features, theirs.offer_features)
        assert my_space.to_json() == their_space.to_json()
        np.testing.assert_array_equal(mine.member_ids, theirs.member_ids)
    my_profiles, their_profiles = member_profiles(chunked, mine.member_ids), member_profiles(whole, theirs.member_ids)
    for field in dataclasses.fields(my_profiles):
        np.testing.assert_array_equal(getattr(my_profiles, field.name), getattr(their_profiles, field.name))
    assert my_profiles.partners.max() >= 0 and my_profiles.brands.max() >= 0  # some members have profiles
    _same_matrix(holdout_positives(chunked, since=cut), holdout_positives(whole, since=cut))
    np.testing.assert_array_equal(redeemed_counts(chunked, mine.offer_ids), redeemed_counts(whole, theirs.offer_ids))


def test_evidence_is_the_same_however_the_events_are_sliced(sample_dirs: dict[str, Path]) -> None:
    data: LoyaltyData = load_dataset(sample_dirs["parquet"]).data
    members, offers = pd.Index(data.members["member_id"]), pd.Index(data.offers["offer_id"])
    cut, _ = holdout_cut(data, 28)
    weights = InteractionWeights()
    one_pass = evidence(data.offer_events, members, offers, weights, until=cut, as_of=cut, slice_rows=10**9)
    sliced = evidence(data.offer_events, members, offers, weights, until=cut, as_of=cut, slice_rows=101)
    _same_matrix(sliced.interactions, one_pass.interactions)
    _same_matrix(sliced.shown, one_pass.shown)
    _same_matrix(sliced.responded, one_pass.responded)


def _dirty_copy(source: Path, target: Path) -> Path:
    """The CSV history with bad offer responses spread over the file: bad cells, an unknown member, a
    duplicate of an event many chunks earlier, a line with too few cells and one that is not UTF-8."""
    shutil.copytree(source, target)
    path = target / "offer_events.csv"
    lines = path.read_bytes().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    first = body[0].decode().split(",")
    bad = [
        b"E9000000001,M_nobody,OF0001,click,app,2026-09-01T10:00:00Z\n",
        b"E9000000002," + first[1].encode() + b",OF0001,stare,app,2026-09-01T10:00:00Z\n",
        b"E9000000003," + first[1].encode() + b",OF0001,click,app,yesterday\n",
        body[0],  # the same event id as the first row, thousands of rows later
        b"E9000000004,too,few\n",
        b"E9000000005," + first[1].encode() + b",OF0001,click,\xff\xfeapp,2026-09-01T10:00:00Z\n",
    ]
    step = len(body) // (len(bad) + 1)
    for n, line in enumerate(bad, start=1):
        body.insert(n * step + n, line)
    path.write_bytes(header + b"".join(body))
    return target


def test_rejects_reports_and_duplicates_match_the_whole_file_path(sample_dirs: dict[str, Path], tmp_path: Path) -> None:
    dirty = _dirty_copy(sample_dirs["csv"], tmp_path / "dirty")
    whole: LoadResult = load_dataset(dirty, rejects_dir=tmp_path / "whole")
    chunked = load_dataset_chunked(dirty, rejects_dir=tmp_path / "chunked", chunk_rows=CHUNK)
    assert chunked.report["offer_events"].rejected == whole.report["offer_events"].rejected == 6
    assert chunked.report["offer_events"].total == whole.report["offer_events"].total
    theirs = (tmp_path / "whole" / "offer_events.rejects.csv").read_text()
    mine = (tmp_path / "chunked" / "offer_events.rejects.csv").read_text()
    assert mine == theirs
    assert "event_id: duplicate of an earlier row" in mine and "not valid UTF-8" in mine and "line has 3 cells" in mine
    pd.testing.assert_frame_equal(_as_text(chunked.data.offer_events), whole.data.offer_events.drop(columns="event_id"))


def test_the_reject_threshold_is_still_per_file(sample_dirs: dict[str, Path], tmp_path: Path) -> None:
    dirty = _dirty_copy(sample_dirs["csv"], tmp_path / "dirty")
    with pytest.raises(TooManyRejectsError) as caught:
        load_dataset_chunked(dirty, rejects_dir=tmp_path / "r", chunk_rows=CHUNK, max_reject_share=0.0001)
    assert "offer_events" in str(caught.value)
    assert (tmp_path / "r" / "offer_events.rejects.csv").exists()  # written before stopping


def test_duplicates_are_found_across_chunks_in_any_order(sample_dirs: dict[str, Path], tmp_path: Path) -> None:
    shuffled = tmp_path / "shuffled"
    shutil.copytree(sample_dirs["parquet"], shuffled)
    events = pd.read_parquet(shuffled / "offer_events.parquet")
    events = pd.concat([events, events.iloc[[5, 17]]]).sample(frac=1.0, random_state=3)
    events.to_parquet(shuffled / "offer_events.parquet", index=False)
    chunked = load_dataset_chunked(shuffled, rejects_dir=tmp_path / "r", chunk_rows=CHUNK)
    whole = load_dataset(shuffled, rejects_dir=tmp_path / "w")
    assert chunked.report["offer_events"].rejected == whole.report["offer_events"].rejected == 2
    assert len(chunked.data.offer_events) == len(events) - 2


def test_a_chunk_size_below_one_is_refused(sample_dirs: dict[str, Path]) -> None:
    with pytest.raises(DataError, match="chunk_rows"):
        load_dataset_chunked(sample_dirs["csv"], chunk_rows=0)


def test_a_file_with_no_rows_gives_the_typed_empty_frame(sample_dirs: dict[str, Path], tmp_path: Path) -> None:
    quiet = tmp_path / "quiet"
    shutil.copytree(sample_dirs["csv"], quiet)
    path = quiet / "offer_events.csv"
    path.write_bytes(path.read_bytes().splitlines(keepends=True)[0])  # the header only
    chunked = load_dataset_chunked(quiet, rejects_dir=tmp_path / "r", chunk_rows=CHUNK)
    whole = load_dataset(quiet, rejects_dir=tmp_path / "w")
    assert len(chunked.data.offer_events) == 0 and chunked.report["offer_events"].total == 0
    assert chunked.data.offer_events["timestamp"].dtype == whole.data.offer_events["timestamp"].dtype
    assert build_training_set(chunked.data)[0].interactions.nnz == 0


def test_keys_in_order_are_kept_unhashed_until_a_chunk_comes_out_of_order() -> None:
    seen = SeenKeys()

    def chunk(*ids: str) -> npt.NDArray[np.bool_]:
        return seen.accept(pd.DataFrame({"event_id": pd.Series(ids, dtype="str")}), np.ones(len(ids), dtype=bool))

    assert not chunk("E01", "E02", "E03").any()
    assert not chunk("E04", "E05").any()
    assert seen.runs == [] and seen.in_order is not None  # ids in order: nothing hashed
    assert chunk("E07", "E02", "E06").tolist() == [False, True, False]  # out of order: E02 came before
    assert seen.in_order is None
    assert chunk("E06", "E08", "E05").tolist() == [True, False, True]
