"""Publishing to a real Redis: records, versions, the atomic switch, rollback, lock and cleanup."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from models.base import top_k
from recsys.cache import Keys, MemberRecord
from recsys.catalogue import load_catalogue
from recsys.errors import ModelError, PublishError
from tests.support.serving_bundle import make_bundle
from training.bundle import ServingBundle
from training.publish import kept_versions, publish, rollback, served_version


def version_keys(client: redis.Redis, keys: Keys, version: str) -> list[bytes]:
    return list(client.scan_iter(match=keys.version_pattern(version), count=10_000))


def test_records_hold_profile_embedding_and_top_candidates(redis_client: redis.Redis, keys: Keys) -> None:
    bundle, _ = make_bundle()
    result = publish(redis_client, bundle, keys=keys, candidates=10)
    assert (result.version, result.members, result.offers) == ("1", 60, len(bundle.offer_ids))
    assert result.bytes > 0
    scores = bundle.member.factors @ bundle.offer.factors.T + bundle.offer.bias + bundle.member.bias[:, None]
    top_ids, _ = top_k(scores.astype(np.float32), 10)
    for m in (1, 2, 5, 20, 21):
        row = bundle.members.iloc[m]
        blob = redis_client.get(keys.member(result.version, bundle.member_ids[m]))
        assert isinstance(blob, bytes)
        record = MemberRecord.unpack(blob)
        assert record.tier == row["tier"]
        assert record.country == row["home_country"]
        assert record.points_balance == row["points_balance"]
        assert record.qualifying_nights_ytd == row["qualifying_nights_ytd"]
        assert record.consent_email == row["consent_email"]
        assert record.consent_personalisation == row["consent_personalisation"]
        expiring = row["points_expiring_on"]
        assert record.points_expiring_day == (-1 if pd.isna(expiring) else (expiring - pd.Timestamp(0)).days)
        if record.consent_personalisation and record.informed:
            assert list(record.candidates) == list(top_ids[m])
            assert np.allclose(record.factors, bundle.member.factors[m], atol=1e-2)
        else:  # no consent: no personal data in the record, popular in tier instead
            popular = np.argsort(-bundle.popular_by_tier[int(row["tier"])], kind="stable")[:10]
            assert list(record.candidates) == list(popular)
            assert not record.factors.any()
        assert blob == MemberRecord(**{**record.__dict__}).pack()  # the vectorised packing is the codec's


def test_catalogue_round_trips_through_redis(redis_client: redis.Redis, keys: Keys) -> None:
    bundle, _ = make_bundle()
    version = publish(redis_client, bundle, keys=keys).version
    catalogue = load_catalogue(redis_client, keys, version)
    assert list(catalogue.offer_ids) == list(bundle.offer_ids)
    assert np.allclose(catalogue.factors, bundle.offer.factors)
    assert np.allclose(catalogue.popular, bundle.popular_by_tier)
    exhausted = catalogue.index["x_exhausted"]
    assert catalogue.limited[exhausted] and catalogue.budget_left[exhausted] == 0


def test_switch_keeps_previous_and_third_publish_removes_oldest(redis_client: redis.Redis, keys: Keys) -> None:
    first = publish(redis_client, make_bundle(seed=1)[0], keys=keys).version
    assert served_version(redis_client, keys) == first
    second = publish(redis_client, make_bundle(seed=2)[0], keys=keys).version
    assert served_version(redis_client, keys) == second
    assert kept_versions(redis_client, keys) == [second, first]
    assert version_keys(redis_client, keys, first)  # kept for rollback
    third = publish(redis_client, make_bundle(seed=3)[0], keys=keys).version
    assert kept_versions(redis_client, keys) == [third, second]
    assert version_keys(redis_client, keys, first) == []
    assert len(version_keys(redis_client, keys, second)) == 60 + 3  # members, offers, meta, member index


def test_versions_kept_one_removes_previous_at_once(redis_client: redis.Redis, keys: Keys) -> None:
    first = publish(redis_client, make_bundle()[0], keys=keys, versions_kept=1).version
    second = publish(redis_client, make_bundle()[0], keys=keys, versions_kept=1).version
    assert kept_versions(redis_client, keys) == [second]
    assert version_keys(redis_client, keys, first) == []
    with pytest.raises(PublishError, match="no earlier version"):
        rollback(redis_client, keys)


def test_rollback_serves_the_previous_version(redis_client: redis.Redis, keys: Keys) -> None:
    with pytest.raises(PublishError, match="no version has been published"):
        rollback(redis_client, keys)
    first = publish(redis_client, make_bundle()[0], keys=keys).version
    with pytest.raises(PublishError, match="no earlier version"):
        rollback(redis_client, keys)
    publish(redis_client, make_bundle()[0], keys=keys)
    assert rollback(redis_client, keys) == first
    assert served_version(redis_client, keys) == first
    with pytest.raises(PublishError, match="no earlier version"):
        rollback(redis_client, keys)
    third = publish(redis_client, make_bundle()[0], keys=keys).version
    assert served_version(redis_client, keys) == third


def test_concurrent_publish_is_refused(redis_client: redis.Redis, keys: Keys) -> None:
    redis_client.set(keys.publish_lock, "someone-else", px=60_000)
    with pytest.raises(PublishError, match="a publish is running"):
        publish(redis_client, make_bundle()[0], keys=keys)
    assert served_version(redis_client, keys) is None
    assert redis_client.get(keys.publish_lock) == b"someone-else"  # not released by the refused one


def test_two_racing_publishes_one_wins(redis_client: redis.Redis, keys: Keys) -> None:
    bundle = make_bundle(n_members=3000)[0]
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        try:
            outcomes.append(publish(redis_client, bundle, keys=keys).version)
        except PublishError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    versions = [o for o in outcomes if o.isdigit()]
    assert len(versions) >= 1
    if len(versions) == 1:  # they overlapped: the other was refused
        assert any("a publish is running" in o for o in outcomes)
    assert served_version(redis_client, keys) == max(versions, key=int)
    assert redis_client.get(keys.publish_lock) is None


def test_partial_version_is_cleaned_up_by_next_publish(redis_client: redis.Redis, keys: Keys) -> None:
    served = publish(redis_client, make_bundle()[0], keys=keys).version
    crashed = str(redis_client.incr(keys.sequence))  # a publish that died half way
    for i in range(5):
        redis_client.set(keys.member(crashed, f"m{i:04d}"), b"half")
    redis_client.hset(keys.version_meta(crashed), "status", "writing")
    assert served_version(redis_client, keys) == served
    new = publish(redis_client, make_bundle()[0], keys=keys).version
    assert version_keys(redis_client, keys, crashed) == []
    assert kept_versions(redis_client, keys) == [new, served]


def test_failed_publish_leaves_the_served_version_alone(redis_client: redis.Redis, keys: Keys) -> None:
    served = publish(redis_client, make_bundle()[0], keys=keys).version
    good, _ = make_bundle()
    broken = ServingBundle(**{**good.__dict__, "members": good.members.iloc[:-1]})  # a member without profile
    with pytest.raises(PublishError, match="no row"):
        publish(redis_client, broken, keys=keys)
    assert served_version(redis_client, keys) == served
    assert redis_client.get(keys.publish_lock) is None
    new = publish(redis_client, good, keys=keys).version
    assert kept_versions(redis_client, keys) == [new, served]
    assert {k.split(b":")[2] for k in redis_client.scan_iter(match=f"{keys.prefix}:v:*")} == {
        new.encode(),
        served.encode(),
    }


@pytest.mark.parametrize(("field", "value"), [("candidates", 0), ("versions_kept", 0)])
def test_bad_arguments_are_refused(redis_client: redis.Redis, keys: Keys, field: str, value: int) -> None:
    with pytest.raises(PublishError):
        publish(redis_client, make_bundle()[0], keys=keys, **{field: value})  # type: ignore[arg-type]


def test_bundle_round_trips_through_files(tmp_path: Path) -> None:
    bundle, _ = make_bundle()
    loaded = ServingBundle.load(bundle.save(tmp_path / "bundle"))
    assert list(loaded.member_ids) == list(bundle.member_ids)
    assert np.array_equal(loaded.member.factors, bundle.member.factors)
    assert np.array_equal(loaded.offer.informed, bundle.offer.informed)
    assert np.array_equal(loaded.redeemed, bundle.redeemed)
    assert loaded.meta == bundle.meta
    pd.testing.assert_frame_equal(loaded.members, bundle.members)
    assert list(loaded.offers["channels"]) == list(bundle.offers["channels"])
    assert list(loaded.offers["regions"]) == list(bundle.offers["regions"])
    assert not list(tmp_path.glob("**/*.pkl"))


def test_inconsistent_bundle_is_refused() -> None:
    good, _ = make_bundle()
    with pytest.raises(ModelError, match="popular_by_tier"):
        ServingBundle(**{**good.__dict__, "popular_by_tier": good.popular_by_tier[:3]})


def test_erased_members_are_not_published(redis_client: redis.Redis, keys: Keys) -> None:
    redis_client.sadd(keys.erased_members(), "m0003", "someone-else")
    result = publish(redis_client, make_bundle()[0], keys=keys)
    assert result.members == 59
    assert redis_client.get(keys.member(result.version, "m0003")) is None
    assert redis_client.get(keys.member(result.version, "m0004")) is not None
    assert redis_client.hget(keys.version_meta(result.version), "members") == b"59"
