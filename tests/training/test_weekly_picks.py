"""``offers weekly-picks`` writes the same picks the API pages through, in every format."""

from __future__ import annotations

from pathlib import Path

import orjson
import pandas as pd
import pytest
import redis

from recsys.cache import MEMBER_INDEX_CHUNK, Keys
from recsys.contacts import ContactPolicy
from recsys.decision import RankingPolicy
from recsys.store import RedisEndpoint
from tests.support.serving_bundle import make_bundle
from training.publish import publish
from training.weekly_picks import export_weekly_picks


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_export_covers_each_consented_member_once_within_the_cap(
    redis_client: redis.Redis, keys: Keys, tmp_path: Path, suffix: str
) -> None:
    bundle, _ = make_bundle(n_members=60)
    publish(redis_client, bundle, keys=keys)
    out = tmp_path / f"picks{suffix}"
    version, members = export_weekly_picks(
        redis_client,
        keys,
        "2026-W48",
        out,
        contact_policy=ContactPolicy(),
        ranking_policy=RankingPolicy(),
        show_progress=False,
    )
    assert members == int(bundle.members["consent_email"].sum())
    if suffix == ".jsonl":
        rows = pd.DataFrame([orjson.loads(line) for line in out.read_bytes().splitlines()])
    elif suffix == ".csv":
        rows = pd.read_csv(out)
    else:
        rows = pd.read_parquet(out)
    assert set(rows["member_id"]) <= set(bundle.members.loc[bundle.members["consent_email"], "member_id"])
    assert rows.groupby("member_id")["rank"].max().max() <= 3
    assert not rows.duplicated(["member_id", "offer_id"]).any()
    assert version == "1"


def test_worker_processes_write_what_one_process_writes(
    redis_endpoint: RedisEndpoint, redis_client: redis.Redis, keys: Keys, tmp_path: Path
) -> None:
    bundle, _ = make_bundle(n_members=2 * MEMBER_INDEX_CHUNK + 500)  # three chunks of the member index
    publish(redis_client, bundle, keys=keys)
    policies = {"contact_policy": ContactPolicy(), "ranking_policy": RankingPolicy(), "show_progress": False}
    one = export_weekly_picks(redis_client, keys, "2026-W48", tmp_path / "one.csv", **policies)  # type: ignore[arg-type]
    spread = export_weekly_picks(
        redis_client,
        keys,
        "2026-W48",
        tmp_path / "spread.csv",
        endpoint=redis_endpoint,
        workers=2,
        **policies,  # type: ignore[arg-type]
    )
    assert spread == one and one[1] > MEMBER_INDEX_CHUNK
    assert (tmp_path / "spread.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
