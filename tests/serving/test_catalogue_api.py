"""Live catalogue changes over HTTP and from a file: validated like the data contract, written to the
overlay with a revision bump, and applied by the offers API on its next request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pandas as pd
import pytest
import redis

from recsys.cache import Keys
from recsys.catalogue_changes import sync_catalogue
from recsys.errors import DataError
from recsys.settings import Settings
from tests.support.live_api import auth, live_api
from tests.support.serving_bundle import make_bundle
from training.publish import publish

WRITER = auth("catalogue-key")
OFFER: dict[str, object] = {
    "title": "Spa afternoon",
    "category": "spa",
    "brand": "Aster",
    "min_tier": "silver",
    "valid_from": "2025-01-01",
    "valid_to": "2099-12-31",
    "points_cost": 500,
    "value": 30.5,
    "budget": 100,
    "channels": ["app", "email"],
    "per_member_limit": 1,
}


@pytest.fixture
def http(app_settings: Settings, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    with live_api(app_settings, monkeypatch) as client:
        yield client


def overlay(client: redis.Redis, keys: Keys) -> dict[str, object]:
    return {k.decode(): orjson.loads(v) for k, v in client.hgetall(keys.catalogue_overlay).items()}


def revision(client: redis.Redis, keys: Keys) -> int:
    return int(client.get(keys.catalogue_revision) or 0)


def test_put_writes_the_offer_and_bumps_the_revision(http: httpx.Client, redis_client: redis.Redis, keys: Keys) -> None:
    resp = http.put("/v1/offers/spa1", json=OFFER, headers=WRITER)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["revision"] == 1 and body["offer_id"] == "spa1"
    stored = overlay(redis_client, keys)["spa1"]
    assert stored == body["offer"]
    assert stored["min_tier"] == 1 and stored["max_tier"] is None
    assert stored["channels"] == ["app", "email"] and stored["valid_to"] == "2099-12-31"
    assert http.put("/v1/offers/spa1", json={**OFFER, "title": "Spa evening"}, headers=WRITER).json()["revision"] == 2


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"category": "casino"}, "category"),
        ({"min_tier": "bronze"}, "min_tier"),
        ({"valid_from": "2100-01-01"}, "body"),
        ({"min_tier": "diamond", "max_tier": "gold"}, "body"),
        ({"points_cost": -1}, "points_cost"),
        ({"value": -0.5}, "value"),
        ({"budget": -3}, "budget"),
        ({"per_member_limit": 0}, "per_member_limit"),
        ({"channels": ["fax"]}, "channels.0"),
        ({"valid_to": "31/12/2099"}, "valid_to"),
        ({"title": ""}, "title"),
        ({"discount": 10}, "discount"),
    ],
)
def test_put_refuses_what_the_data_contract_refuses(
    http: httpx.Client, redis_client: redis.Redis, keys: Keys, changes: dict[str, object], field: str
) -> None:
    resp = http.put("/v1/offers/spa1", json={**OFFER, **changes}, headers=WRITER)
    assert resp.status_code == 422
    assert field in {p["field"] for p in resp.json()["error"]["fields"]}, resp.text
    assert revision(redis_client, keys) == 0 and overlay(redis_client, keys) == {}


def test_a_missing_required_field_is_named(http: httpx.Client) -> None:
    resp = http.put("/v1/offers/spa1", json={k: v for k, v in OFFER.items() if k != "category"}, headers=WRITER)
    assert resp.status_code == 422 and "category" in resp.json()["error"]["message"]


def test_delete_takes_down_and_bumps_the_revision(http: httpx.Client, redis_client: redis.Redis, keys: Keys) -> None:
    resp = http.delete("/v1/offers/o001", headers=WRITER)
    assert resp.status_code == 200
    assert resp.json() == {"offer_id": "o001", "revision": 1, "offer": None}
    assert overlay(redis_client, keys) == {"o001": None}
    assert http.delete("/v1/offers/o001", headers=WRITER).json()["revision"] == 2  # idempotent, still announced


def test_takedown_and_new_offer_reach_the_next_offers_request(
    http: httpx.Client, redis_client: redis.Redis, keys: Keys
) -> None:
    bundle, _ = make_bundle()
    publish(redis_client, bundle, keys=keys)
    member = "m0010"  # tier 0, informed
    before = [
        o["offer_id"]
        for o in http.get(f"/v1/members/{member}/offers", params={"limit": 20}, headers=auth("reader-key")).json()[
            "offers"
        ]
    ]
    gone = before[0]
    assert http.delete(f"/v1/offers/{gone}", headers=WRITER).status_code == 200
    after = [
        o["offer_id"]
        for o in http.get(f"/v1/members/{member}/offers", params={"limit": 20}, headers=auth("reader-key")).json()[
            "offers"
        ]
    ]
    assert gone not in after and len(after) == 20
    edited = {**OFFER, "min_tier": "classic", "valid_from": "2000-01-01", "budget": None}
    assert http.put(f"/v1/offers/{gone}", json=edited, headers=WRITER).status_code == 200  # back, edited
    served = http.get(f"/v1/members/{member}/offers", params={"limit": 20}, headers=auth("reader-key")).json()["offers"]
    assert served[0]["offer_id"] == gone and served[0]["title"] == "Spa afternoon"


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def offers_file(rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame([{"offer_id": f"s{i}", **OFFER, "channels": "app|email", **r} for i, r in enumerate(rows)])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_sync_upserts_and_takes_down_in_one_revision(
    redis_client: redis.Redis, keys: Keys, tmp_path: Path, suffix: str
) -> None:
    frame = offers_file([{"status": "active"}, {"status": "withdrawn", "title": None}, {"budget": None}])
    result = sync_catalogue(redis_client, keys, write(frame, tmp_path / f"offers{suffix}"))
    assert (result.upserted, result.taken_down, result.rejected, result.revision) == (2, 1, [], 1)
    stored = overlay(redis_client, keys)
    assert stored["s1"] is None
    assert stored["s0"]["channels"] == ["app", "email"] and stored["s2"]["budget"] is None


def test_sync_with_a_bad_row_applies_nothing(redis_client: redis.Redis, keys: Keys, tmp_path: Path) -> None:
    frame = offers_file([{}, {"valid_from": "2100-01-01"}, {"category": "casino"}])
    frame.loc[3] = frame.loc[0]  # the same offer twice
    with pytest.raises(DataError, match=r"3 problems, nothing applied: row 2 .*valid_from.*row 3 category"):
        sync_catalogue(redis_client, keys, write(frame, tmp_path / "offers.csv"))
    assert revision(redis_client, keys) == 0
    result = sync_catalogue(redis_client, keys, tmp_path / "offers.csv", allow_rejects=True)
    assert result.upserted == 1 and [(r.index, r.field) for r in result.rejected] == [
        (1, ""),
        (2, "category"),
        (3, "offer_id"),
    ]


def test_sync_refuses_a_file_it_cannot_read(redis_client: redis.Redis, keys: Keys, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"csv or \.parquet"):
        sync_catalogue(redis_client, keys, tmp_path / "offers.xlsx")
    with pytest.raises(DataError, match="no offer_id"):
        sync_catalogue(redis_client, keys, write(pd.DataFrame({"title": ["x"]}), tmp_path / "o.csv"))
