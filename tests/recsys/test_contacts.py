"""Contact policy: impression caps, dismissals, the weekly email cap, rotation and per-member limits,
on states written by the real event recorder (and hand-made states for the edges)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis

from recsys.cache import Keys
from recsys.contacts import ContactPolicy, ContactState, iso_week, load_contact_policy
from recsys.errors import ConfigurationError
from recsys.events import OfferEvent, record_events

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
POLICY = ContactPolicy.model_validate({})
DAY = 86_400


def event(kind: str, at: datetime, offer: str = "o1", channel: str = "app", member: str = "m1") -> OfferEvent:
    return OfferEvent(member_id=member, offer_id=offer, kind=kind, channel=channel, timestamp=at)


def state_after(client: redis.Redis, keys: Keys, events: list[OfferEvent], member: str = "m1") -> ContactState:
    record_events(client, keys, events, NOW + timedelta(days=60))
    return ContactState.from_redis(client.hgetall(keys.member_contacts(member)))


def at(days: float) -> datetime:
    return NOW + timedelta(days=days)


def test_defaults_are_the_documented_ones() -> None:
    assert (POLICY.impression_cap, POLICY.impression_window_days, POLICY.impression_suppress_days) == (3, 7, 14)
    assert (POLICY.dismiss_suppress_days, POLICY.email_weekly_cap) == (30, 3)


def test_three_impressions_in_a_week_without_click_suppress_for_14_days(redis_client: redis.Redis, keys: Keys) -> None:
    state = state_after(redis_client, keys, [event("impression", at(d)) for d in (0, 2, 5)])
    assert state.impressions["o1"] == tuple(int(at(d).timestamp()) for d in (0, 2, 5))
    assert POLICY.suppressed(state, at(4.9)) == set()  # two so far
    assert POLICY.suppressed(state, at(5)) == {"o1"}  # takes effect with the third
    assert POLICY.suppressed(state, at(5 + 13.9)) == {"o1"}
    assert POLICY.suppressed(state, at(5 + 14)) == set()


def test_impressions_spread_over_more_than_the_window_do_not_suppress(redis_client: redis.Redis, keys: Keys) -> None:
    state = state_after(redis_client, keys, [event("impression", at(d)) for d in (0, 4, 8)])
    assert POLICY.suppressed(state, at(8.5)) == set()


def test_a_click_resets_the_count(redis_client: redis.Redis, keys: Keys) -> None:
    events = [
        event("impression", at(0)),
        event("impression", at(1)),
        event("click", at(1.5)),
        event("impression", at(2)),
    ]
    state = state_after(redis_client, keys, events)
    assert POLICY.suppressed(state, at(2)) == set()
    state = state_after(redis_client, keys, [event("impression", at(3)), event("impression", at(4))])
    assert POLICY.suppressed(state, at(4)) == {"o1"}  # three since the click


def test_a_click_during_suppression_lifts_it() -> None:
    shown = tuple(int(at(d).timestamp()) for d in (0, 1, 2))
    state = ContactState(impressions={"o1": shown}, clicks={"o1": int(at(3).timestamp())})
    assert POLICY.suppressed(state, at(4)) == set()


def test_dismissal_suppresses_for_30_days_on_every_channel(redis_client: redis.Redis, keys: Keys) -> None:
    state = state_after(redis_client, keys, [event("dismiss", at(0), offer="o2", channel="email")])
    assert POLICY.suppressed(state, at(0)) == {"o2"}
    assert POLICY.suppressed(state, at(29.9)) == {"o2"}
    assert POLICY.suppressed(state, at(30)) == set()


def test_only_the_latest_dismissal_counts(redis_client: redis.Redis, keys: Keys) -> None:
    state = state_after(redis_client, keys, [event("dismiss", at(10)), event("dismiss", at(0))])  # late arrival
    assert state.dismissals["o1"] == int(at(10).timestamp())


def test_email_cap_per_iso_week(redis_client: redis.Redis, keys: Keys) -> None:
    monday = datetime(2025, 3, 10, 9, tzinfo=UTC)
    week = iso_week(monday)
    assert week == "2025-W11"
    sent = [event("impression", monday + timedelta(hours=h), offer=f"o{h}", channel="email") for h in range(2)]
    state = state_after(redis_client, keys, [*sent, event("impression", monday, offer="o9", channel="app")])
    assert POLICY.email_remaining(state, week) == 1
    state = state_after(redis_client, keys, [event("impression", monday + timedelta(days=2), channel="email")])
    assert POLICY.email_remaining(state, week) == 0
    assert POLICY.email_remaining(state, iso_week(monday + timedelta(days=7))) == 3
    state = state_after(redis_client, keys, [event("impression", monday + timedelta(days=7), channel="email")])
    assert (state.email_week, state.email_count) == ("2025-W12", 1)
    state = state_after(redis_client, keys, [event("impression", monday, offer="late", channel="email")])
    assert (state.email_week, state.email_count) == ("2025-W12", 1)  # a late event of a past week is not counted


def test_rotation_discounts_recent_impressions(redis_client: redis.Redis, keys: Keys) -> None:
    events = [event("impression", at(d), offer="o1") for d in (0, 1)] + [event("impression", at(-5), offer="o2")]
    state = state_after(redis_client, keys, events)
    assert POLICY.recent_impressions(state, at(1)) == {"o1": 2}
    assert POLICY.rotation_weights(state, at(1)) == {"o1": pytest.approx(0.64)}
    assert ContactPolicy.model_validate({"rotation_days": 0}).rotation_weights(state, at(1)) == {}


def test_redemptions_per_member_and_limits(redis_client: redis.Redis, keys: Keys) -> None:
    state = state_after(
        redis_client, keys, [event("redeem", at(0)), event("redeem", at(1)), event("redeem", at(1), "o2")]
    )
    assert (state.redemptions("o1"), state.redemptions("o2"), state.redemptions("o3")) == (2, 1, 0)
    assert state.limit_reached({"o1": 2, "o2": None, "o3": 1}) == {"o1"}
    assert POLICY.excluded(state, at(1), {"o2": 1}) == {"o2"}


def test_impression_times_are_bounded(redis_client: redis.Redis, keys: Keys) -> None:
    policy = ContactPolicy.model_validate({"impressions_kept": 4})
    events = [event("impression", at(d / 10)) for d in range(10)]
    record_events(redis_client, keys, events, NOW, policy=policy)
    state = ContactState.from_redis(redis_client.hgetall(keys.member_contacts("m1")))
    assert state.impressions["o1"] == tuple(int(at(d / 10).timestamp()) for d in range(6, 10))


def test_damaged_fields_are_skipped() -> None:
    state = ContactState.from_redis({b"c:o1": b"soon", b"r:o1": b"2", b"ew": b"garbage", b"zz": b"1"})
    assert state.clicks == {} and state.redemptions("o1") == 2 and state.email_week is None


def test_policy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFERS_CONTACT_IMPRESSION_CAP", "5")
    monkeypatch.setenv("OFFERS_CONTACT_EMAIL_WEEKLY_CAP", "1")
    policy = load_contact_policy()
    assert (policy.impression_cap, policy.email_weekly_cap) == (5, 1)


@pytest.mark.parametrize(
    ("name", "value"),
    [("IMPRESSION_CAP", "0"), ("ROTATION_DISCOUNT", "1.5"), ("IMPRESSIONS_KEPT", "2"), ("CONTACT_TTL_DAYS", "10")],
)
def test_unworkable_policy_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"OFFERS_CONTACT_{name}", value)
    with pytest.raises(ConfigurationError, match="OFFERS_CONTACT_"):
        load_contact_policy()
