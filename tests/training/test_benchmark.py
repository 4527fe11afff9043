from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.errors import DataError
from training.benchmark import (
    BenchmarkRow,
    RejectedRow,
    format_table,
    parse_separator,
    protocol_validations,
    read_interactions,
    run_benchmark,
    write_json,
    write_recs,
)
from training.split import item_folds, msr_split

COLUMNS = ["user", "item", "rating", "timestamp"]
Bench = tuple[Path, pd.DataFrame, pd.DataFrame, list[BenchmarkRow]]


def _planted_file(path: Path, seed: int = 0, n_users: int = 300, n_items: int = 200, clusters: int = 5) -> None:
    """Users of a taste cluster mostly rate items of that cluster, with a popularity tilt; tab separated."""
    rng = np.random.default_rng(seed)
    user_cluster = rng.integers(0, clusters, n_users)
    item_cluster = rng.integers(0, clusters, n_items)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.5
    lines = []
    for u in range(n_users):
        weights = np.where(item_cluster == user_cluster[u], 20.0, 1.0) * popularity
        n = int(rng.integers(30, 60))
        for i in rng.choice(n_items, size=n, replace=False, p=weights / weights.sum()):
            lines.append(f"{u + 1}\t{1000 + i}\t{rng.integers(1, 6)}\t{880000000 + u * 1000 + i}")
    rng.shuffle(lines)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    path = tmp_path_factory.mktemp("bench") / "u.data"
    _planted_file(path)
    df = read_interactions(path, "\\t", COLUMNS)
    train, test = msr_split(df)
    rows = run_benchmark(train, test, k=10, trials=2, seed=42)
    return path, train, test, rows


def test_learned_families_beat_popularity(
    benchmark: Bench,
) -> None:
    rows = {row.algo: row for row in benchmark[3]}
    assert list(rows) == ["lightfm", "als", "bpr", "popularity"]
    best_learned = max(rows[name].ndcg for name in ("lightfm", "als", "bpr"))
    assert best_learned > rows["popularity"].ndcg + 0.1
    for row in rows.values():
        assert 0.0 <= row.map <= row.recall <= 1.0 and 0.0 < row.ndcg < 1.0 and row.train_s >= 0.0


def test_json_has_exactly_the_published_keys(benchmark: Bench, tmp_path: Path) -> None:
    out = tmp_path / "out" / "bench.json"
    write_json(benchmark[3], out)
    payload = json.loads(out.read_text())
    assert [entry["algo"] for entry in payload] == ["lightfm", "als", "bpr", "popularity"]
    for entry in payload:
        assert set(entry) == {"algo", "train_s", "map", "ndcg_at_10", "precision_at_10", "recall_at_10"}
        assert all(isinstance(entry[key], float) for key in entry if key != "algo")


def test_recs_csv_uses_original_ids_and_skips_training_items(benchmark: Bench, tmp_path: Path) -> None:
    _, train, _, rows = benchmark
    out = tmp_path / "recs.csv"
    n = write_recs(rows, out)
    with out.open() as handle:
        assert handle.readline().strip() == "algo,user,item,rank"
    recs = pd.read_csv(out, dtype=str)
    assert len(recs) == n == 4 * train["user"].nunique() * 10
    assert set(recs["algo"]) == {"lightfm", "als", "bpr", "popularity"}
    assert sorted(recs["rank"].astype(int).unique().tolist()) == list(range(1, 11))
    assert set(recs["item"]) <= set(train["item"])
    assert set(recs["user"]) == set(train["user"])
    seen = set(zip(train["user"], train["item"], strict=True))
    assert not any((u, i) in seen for u, i in zip(recs["user"], recs["item"], strict=True))
    first = recs[(recs["algo"] == "als") & (recs["user"] == recs["user"].iloc[0])]
    assert first["rank"].astype(int).tolist() == list(range(1, 11))


def test_ndcg_and_its_standard_error_recompute_from_the_written_lists(benchmark: Bench, tmp_path: Path) -> None:
    _, train, test, rows = benchmark
    out = tmp_path / "recs.csv"
    write_recs(rows, out)
    recs = pd.read_csv(out, dtype=str)
    relevant = test[test["user"].isin(set(train["user"]))].groupby("user")["item"].apply(set)
    for row in rows:
        mine = recs[recs["algo"] == row.algo].sort_values("rank", key=lambda r: r.astype(int))
        lists = mine.groupby("user")["item"].apply(list)
        scores = []
        for user, items in relevant.items():
            gains = [1.0 / math.log2(rank + 2) for rank, item in enumerate(lists.get(user, [])[:10]) if item in items]
            ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(items), 10)))
            scores.append(sum(gains) / ideal)
        assert row.ndcg == pytest.approx(float(np.mean(scores)), abs=1e-9)
        assert row.ndcg_se == pytest.approx(float(np.std(scores, ddof=1) / math.sqrt(len(scores))), abs=1e-9)


def test_format_table_lists_every_algorithm(
    benchmark: Bench,
) -> None:
    table = format_table(benchmark[3])
    lines = table.splitlines()
    assert lines[0].split() == ["algo", "train_s", "MAP", "nDCG@10", "Precision@10", "Recall@10"]
    assert [line.split()[0] for line in lines[2:]] == ["lightfm", "als", "bpr", "popularity"]


@pytest.mark.parametrize(("typed", "expected"), [("\\t", "\t"), ("\t", "\t"), ("tab", "\t"), ("::", "::"), (",", ",")])
def test_parse_separator(typed: str, expected: str) -> None:
    assert parse_separator(typed) == expected


def test_read_interactions_reports_bad_rows_and_ignores_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "ratings.dat"
    path.write_text(
        "userId::movieId::rating::timestamp\n"
        "1::10::5::978300760::extra\n"
        "\n"
        "2::11\n"
        "::12::3::1\n"
        "3::13::five::1\n"
        "4::14::4::978300761\n"
    )
    rejected: list[RejectedRow] = []
    df = read_interactions(path, "::", COLUMNS, on_reject=rejected.append)
    assert df["user"].tolist() == ["1", "4"]
    assert df["item"].tolist() == ["10", "14"]
    assert df["rating"].tolist() == [5.0, 4.0]
    assert df.attrs["rejected"] == 3 and df.attrs["header"]
    assert [(r.line, r.reason) for r in rejected] == [
        (4, "fewer than 4 fields"),
        (5, "empty user"),
        (6, "rating is not a number"),
    ]


def test_read_interactions_without_header_or_rating(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text("a,x,ignored\nb,y,ignored\n")
    df = read_interactions(path, ",", ["user", "item"])
    assert df.to_dict("list") == {"user": ["a", "b"], "item": ["x", "y"]}
    assert df.attrs["rejected"] == 0


def test_read_interactions_needs_user_and_item(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("1,2\n")
    with pytest.raises(DataError):
        read_interactions(path, ",", ["user", "rating"])
    with pytest.raises(DataError):
        read_interactions(tmp_path / "missing.csv", ",", COLUMNS)


def test_run_benchmark_refuses_a_test_split_of_strangers() -> None:
    train = pd.DataFrame({"user": ["a", "b"], "item": ["x", "y"]})
    test = pd.DataFrame({"user": ["c"], "item": ["x"]})
    with pytest.raises(DataError):
        run_benchmark(train, test, trials=0, families=["popularity"])


def test_written_csv_is_plain(tmp_path: Path, benchmark: Bench) -> None:
    out = tmp_path / "recs.csv"
    write_recs(benchmark[3][:1], out)
    with out.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        first = next(reader)
    assert header == ["algo", "user", "item", "rank"] and first[0] == "lightfm" and first[3] == "1"


def test_tuning_scores_the_test_protocol_on_the_training_rows(benchmark: Bench) -> None:
    _, train, _, _ = benchmark
    search, confirm = protocol_validations(train, seed=43)
    (rest, held), (_, confirm_held) = item_folds(train, n=2, seed=43)
    assert search.relevant.nnz == len(held.drop_duplicates(["user", "item"]).pipe(lambda h: h[h.user.isin(rest.user)]))
    assert search.fit.interactions.sum() == len(rest)  # fitted on the other rows only
    assert confirm.fit.interactions.sum() == len(train) - len(confirm_held)
    lines: list[str] = []
    run_benchmark(train, benchmark[2], k=10, trials=3, seed=42, families=("als",), progress=lines.append)
    # on this file a trial leads the defaults on fold 0; it is scored again on fold 1 before it is taken
    assert any(line.strip().startswith("confirmation nDCG@10: defaults") for line in lines), lines
