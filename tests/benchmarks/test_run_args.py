"""The benchmark run's options reach the setups they size, and the served model is the family asked for."""

from __future__ import annotations

from pathlib import Path

from benchmarks.run import parse, setups
from benchmarks.serving import ServingSetup, build_bundle


def test_the_served_family_defaults_to_als_and_can_be_any_family() -> None:
    assert setups(parse([]))[0].family == "als"
    assert setups(parse(["--serving-family", "lightfm", "--serving-members", "500"]))[0].family == "lightfm"


def test_the_bundle_is_trained_with_the_served_family(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "data", ServingSetup(members=300, small_members=100, offers=60, family="lightfm"))
    assert bundle.meta["family"] == "lightfm"
    assert bundle.n_factors > 32  # LightFM's 32 learned dimensions and the matching, response and level ones
    assert bundle.member.factors.shape == (300, bundle.n_factors)
