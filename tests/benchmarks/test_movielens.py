"""The MovieLens fetch's checks, on wheels built here (the real download needs PyPI; `make bench-movielens`)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from benchmarks.movielens import MEMBER, FetchError, describe, extract_ratings

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ROWS = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t377\t1\t878887116\n"


def _wheel(tmp_path: Path, member: str = MEMBER, body: str = HEADER + ROWS) -> tuple[Path, str]:
    wheel = tmp_path / "recbole-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(member, body)
    return wheel, hashlib.sha256(body.encode()).hexdigest()


def test_the_ratings_are_written_as_u_data_without_the_header_and_in_their_order(tmp_path: Path) -> None:
    wheel, digest = _wheel(tmp_path)
    out = extract_ratings(wheel, tmp_path / "ml" / "u.data", sha256=digest)
    assert out.read_text() == ROWS
    assert describe(out) == (3, 2, 3)


def test_a_file_with_another_digest_is_refused(tmp_path: Path) -> None:
    wheel, _ = _wheel(tmp_path)
    with pytest.raises(FetchError, match="SHA-256"):
        extract_ratings(wheel, tmp_path / "u.data", sha256="0" * 64)
    assert not (tmp_path / "u.data").exists()


def test_a_wheel_without_the_dataset_is_refused(tmp_path: Path) -> None:
    wheel, digest = _wheel(tmp_path, member="recbole/other.inter")
    with pytest.raises(FetchError, match="holds no"):
        extract_ratings(wheel, tmp_path / "u.data", sha256=digest)


def test_a_file_without_its_header_is_refused(tmp_path: Path) -> None:
    wheel, digest = _wheel(tmp_path, body=ROWS)
    with pytest.raises(FetchError, match="header"):
        extract_ratings(wheel, tmp_path / "u.data", sha256=digest)
