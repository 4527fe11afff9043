"""Eligibility masks: each rule on its own, and batch masks equal to per-member ones."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from recsys.catalogue import Catalogue, day_number, offer_records
from recsys.rules import eligible, eligible_matrix, reachable
from tests.support.serving_bundle import make_bundle

ON = date(2025, 6, 1)
DAY = day_number(ON)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    bundle, _ = make_bundle(n_plain_offers=3, on=ON)
    records = offer_records(bundle.offers, redeemed=bundle.redeemed)
    return Catalogue.build(
        records, factors=bundle.offer.factors, bias=bundle.offer.bias, popular=bundle.popular_by_tier
    )


def allowed(catalogue: Catalogue, offer: str, **context: object) -> bool:
    args: dict[str, object] = {"tier": 4, "country": "CN", "day": DAY, "channel": "app"} | context
    return bool(eligible(catalogue, **args)[catalogue.index[offer]])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("offer", "context", "expected"),
    [
        ("o000", {}, True),
        ("x_expired", {}, False),
        ("x_expired", {"day": DAY - 1}, True),
        ("x_future", {}, False),
        ("x_future", {"day": DAY + 1}, True),
        ("x_ends_today", {}, True),
        ("x_ends_today", {"day": DAY + 1}, False),
        ("x_exhausted", {}, False),
        ("x_last_one", {}, True),
        ("x_gold_plus", {"tier": 1}, False),
        ("x_gold_plus", {"tier": 2}, True),
        ("x_diamond_only", {"tier": 3}, False),
        ("x_up_to_silver", {"tier": 1}, True),
        ("x_up_to_silver", {"tier": 2}, False),
        ("x_email_only", {}, False),
        ("x_email_only", {"channel": "email"}, True),
        ("x_email_only", {"channel": None}, True),
        ("x_app_or_web", {"channel": "web"}, True),
        ("x_app_or_web", {"channel": "sms"}, False),
        ("x_china_only", {}, True),
        ("x_china_only", {"country": "IR"}, False),
        ("x_china_only", {"country": "??"}, False),
    ],
)
def test_each_rule(catalogue: Catalogue, offer: str, context: dict[str, object], expected: bool) -> None:
    assert allowed(catalogue, offer, **context) is expected


def test_masks_are_cached_read_only(catalogue: Catalogue) -> None:
    mask = eligible(catalogue, tier=2, country="IR", day=DAY, channel="app")
    assert eligible(catalogue, tier=2, country="IR", day=DAY, channel="app") is mask
    assert not mask.flags.writeable


def test_unknown_channel_is_refused(catalogue: Catalogue) -> None:
    with pytest.raises(ValueError, match="unknown channel"):
        eligible(catalogue, tier=0, country="CN", day=DAY, channel="fax")


@pytest.mark.parametrize(
    ("channel", "consent", "expected"), [("email", False, False), ("email", True, True), ("app", False, True)]
)
def test_email_needs_consent(channel: str, consent: bool, expected: bool) -> None:
    assert reachable(channel, consent_email=consent) is expected


def test_batch_masks_equal_single_ones(catalogue: Catalogue) -> None:
    tiers = np.array([0, 4, 2, 2, 1, 4])
    countries = np.array(["CN", "IR", "US", "CN", "CN", "IR"])
    consent = np.array([True, True, False, True, True, True])
    matrix = eligible_matrix(
        catalogue, tiers=tiers, countries=countries, day=DAY, channel="email", consent_email=consent
    )
    for row, (tier, country) in enumerate(zip(tiers, countries, strict=True)):
        single = eligible(catalogue, tier=int(tier), country=str(country), day=DAY, channel="email")
        assert np.array_equal(matrix[row], single & consent[row])
