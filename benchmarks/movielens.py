"""Fetch the public MovieLens 100K ratings for ``offers benchmark`` (``make bench-movielens``).

GroupLens's own download is a zip behind a licence page; the same 100,000 ratings ship inside RecBole's
wheel on PyPI (``recbole/dataset_example/ml-100k/ml-100k.inter``: the rows of ``u.data`` in their
order, tab-separated, under a typed header line). This downloads that wheel with pip (no install, no
dependencies), checks the file's SHA-256, and writes it as ``u.data`` is laid out (``user item rating
timestamp``, tab-separated, no header), so the benchmark's per-item draw is the one the original file
gets. The dataset is not part of the project; it is fetched to ``var/`` on request only.

Usage: ``python -m benchmarks.movielens [--out var/movielens]`` prints the path of the written file.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from training.benchmark import read_interactions

WHEEL = "recbole==1.2.1"
MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"
SHA256 = "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"  # of MEMBER in that wheel
ROWS, USERS, ITEMS = 100_000, 943, 1_682
COLUMNS = ("user", "item", "rating", "timestamp")


class FetchError(RuntimeError):
    """The download failed or did not hold the expected file."""


def extract_ratings(wheel: Path, out: Path, *, sha256: str = SHA256) -> Path:
    """Write ``MEMBER`` of ``wheel`` to ``out`` without its header line, once its digest is ``sha256``."""
    with zipfile.ZipFile(wheel) as archive:
        try:
            raw = archive.read(MEMBER)
        except KeyError:
            raise FetchError(f"{wheel.name} holds no {MEMBER}") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha256:
        raise FetchError(f"{MEMBER} has SHA-256 {digest}, expected {sha256}")
    lines = raw.decode("utf-8").splitlines()
    if not lines or not lines[0].startswith("user_id"):
        raise FetchError(f"{MEMBER} does not start with its header line")
    rows = lines[1:]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return out


def describe(path: Path) -> tuple[int, int, int]:
    """(rows, distinct users, distinct items) of a ratings file as ``offers benchmark`` reads it."""
    frame = read_interactions(path, "\t", COLUMNS)
    return len(frame), frame["user"].nunique(), frame["item"].nunique()


def fetch(out_dir: Path) -> Path:
    """``out_dir/u.data``, downloaded and checked unless it is already there."""
    target = out_dir / "u.data"
    if not target.exists():
        with tempfile.TemporaryDirectory() as tmp:
            command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
            done = subprocess.run([*command, "--dest", tmp, WHEEL], capture_output=True, text=True, check=False)
            wheels = sorted(Path(tmp).glob("recbole-*.whl"))
            if done.returncode != 0 or not wheels:
                raise FetchError(f"pip download {WHEEL} failed: {done.stderr.strip() or done.stdout.strip()}")
            extract_ratings(wheels[0], target)
    found = describe(target)
    if found != (ROWS, USERS, ITEMS):
        raise FetchError(f"{target} holds {found[0]} rows of {found[1]} users and {found[2]} items")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("var/movielens"), help="folder for u.data")
    args = parser.parse_args(argv)
    try:
        path = fetch(args.out)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
