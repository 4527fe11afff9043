"""Bad history files through the real jobs (``offers train`` and ``offers run``, real MLflow, real Redis):
rejects are reported row by row, the job stops cleanly above the threshold with a message naming the
file and the rejects file, and nothing is half done: no MLflow run, no registered model, no published
version. Below the threshold the job goes on and says what it left out."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import redis
from mlflow import MlflowClient
from typer.testing import CliRunner

from recsys.cache import Keys
from recsys.settings import Settings, get_settings
from recsys.store import RedisEndpoint
from training.cli import app

N_EACH = 10  # bad rows of each kind: 30 of ~1,530 members is about 2%, over the 1% default


@pytest.fixture
def data(sample: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(sample, copy, ignore=shutil.ignore_patterns("rejects"))
    return copy


@pytest.fixture
def env(
    tmp_path: Path, redis_endpoint: RedisEndpoint, keys: Keys, redis_client: redis.Redis
) -> Iterator[dict[str, str]]:
    yield {
        "OFFERS_HOME": str(tmp_path),
        "REDIS_URL": redis_endpoint.url,
        "OFFERS_KEY_PREFIX": keys.prefix,
        "MLFLOW_TRACKING_URI": "",
        "OPENBLAS_NUM_THREADS": "1",
    }


def job_settings(env: dict[str, str]) -> Settings:
    return get_settings(home=Path(env["OFFERS_HOME"]), redis_url=env["REDIS_URL"], key_prefix=env["OFFERS_KEY_PREFIX"])


def corrupt_members(data: Path, n_each: int) -> list[str]:
    """Append latin-1 ids, duplicated ids and lines with too few cells; return the kinds, in file order."""
    path = data / "members.csv"
    lines = path.read_bytes().splitlines(keepends=True)
    good = lines[1 : 1 + n_each]
    latin1 = [line.replace(b",", f"\xe9{i},".encode("latin-1"), 1) for i, line in enumerate(good)]  # id + "é<i>"
    broken = [b"M-broken,gold\n"] * n_each
    path.write_bytes(b"".join(lines + latin1 + good + broken))
    return ["latin-1"] * n_each + ["duplicate"] * n_each + ["broken"] * n_each


def assert_nothing_was_done(settings: Settings, redis_client: redis.Redis, keys: Keys) -> None:
    client = MlflowClient(settings.tracking_uri)
    assert client.search_registered_models() == []
    experiment = client.get_experiment_by_name(settings.experiment)
    assert experiment is None or client.search_runs([experiment.experiment_id]) == []
    assert redis_client.get(keys.current) is None
    assert not list(redis_client.scan_iter(match=f"{keys.prefix}:v:*"))


def test_train_stops_above_the_threshold_reporting_each_rejected_row(
    data: Path, env: dict[str, str], redis_client: redis.Redis, keys: Keys
) -> None:
    kinds = corrupt_members(data, N_EACH)
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--family", "popularity"], env=env)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    message = result.stderr
    assert "members: 30 of" in message and "above the limit of 1.0%" in message
    assert str(data / "rejects" / "members.rejects.csv") in message

    rejects = pd.read_csv(data / "rejects" / "members.rejects.csv", dtype=str, keep_default_na=False)
    assert len(rejects) == len(kinds)
    reasons = dict(zip(range(len(kinds)), rejects["reason"], strict=True))
    for row, kind in enumerate(kinds):
        expected = {
            "latin-1": "member_id: not valid UTF-8 text",
            "duplicate": "member_id: duplicate of an earlier row",
            "broken": "line has 2 cells, expected",
        }[kind]
        assert expected in reasons[row], (row, kind, reasons[row])
    assert_nothing_was_done(job_settings(env), redis_client, keys)


def test_run_publishes_nothing_when_the_history_is_rejected(
    data: Path, env: dict[str, str], redis_client: redis.Redis, keys: Keys
) -> None:
    corrupt_members(data, N_EACH)
    result = CliRunner().invoke(app, ["run", "--data", str(data)], env=env)
    assert result.exit_code == 1, result.output
    assert "above the limit" in result.stderr
    assert "Serving on" not in result.output
    assert_nothing_was_done(job_settings(env), redis_client, keys)


def test_a_missing_column_stops_train_naming_file_and_column(
    data: Path, env: dict[str, str], redis_client: redis.Redis, keys: Keys
) -> None:
    stays = pd.read_csv(data / "stays.csv", dtype=str, keep_default_na=False).drop(columns=["nights"])
    stays.to_csv(data / "stays.csv", index=False)
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--family", "popularity"], env=env)
    assert result.exit_code == 1, result.output
    assert "stays: required column 'nights' is missing" in result.stderr
    assert_nothing_was_done(job_settings(env), redis_client, keys)


def test_a_file_in_another_encoding_is_rejected_row_by_row_and_stops(
    data: Path, env: dict[str, str], redis_client: redis.Redis, keys: Keys
) -> None:
    """A whole file saved as latin-1: each row with a non-ASCII character is a reject, not a crash."""
    path = data / "offers.csv"
    offers = pd.read_csv(path, dtype=str, keep_default_na=False)
    odd = offers.index % 2 == 1
    offers.loc[odd, "brand"] = "Hôtel " + offers.loc[odd, "brand"]
    offers.to_csv(path, index=False, encoding="latin-1")
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--family", "popularity"], env=env)
    assert result.exit_code == 1, result.output
    assert "offers:" in result.stderr and "above the limit" in result.stderr
    rejects = pd.read_csv(data / "rejects" / "offers.rejects.csv", dtype=str, keep_default_na=False)
    assert len(rejects) == int(odd.sum())
    assert rejects["offer_id"].tolist() == offers.loc[odd, "offer_id"].tolist()
    assert rejects["reason"].str.contains("not valid UTF-8 text").all()
    assert_nothing_was_done(job_settings(env), redis_client, keys)


def test_below_the_threshold_train_goes_on_and_reports_what_it_left_out(
    data: Path, env: dict[str, str], redis_client: redis.Redis, keys: Keys
) -> None:
    corrupt_members(data, 2)  # 6 of ~1,500: under 1%
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--family", "popularity"], env=env)
    assert result.exit_code == 0, result.output
    assert f"members: rejected 6 of {1500 + 6} rows" in result.output
    client = MlflowClient(job_settings(env).tracking_uri)
    assert [m.name for m in client.search_registered_models()] == [job_settings(env).model_name]
