"""docs/data.md documents every file and column of the data contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.schema import FILES, FileSpec

DOC = Path(__file__).resolve().parents[2] / "docs" / "data.md"


def _section(text: str, name: str) -> str:
    start = text.index(f"### `{name}`")
    end = text.find("\n### ", start + 1)
    return text[start : end if end > 0 else len(text)]


@pytest.mark.parametrize("spec", FILES, ids=lambda s: s.name)
def test_every_column_is_documented_in_its_file_section(spec: FileSpec) -> None:
    text = DOC.read_text(encoding="utf-8")
    section = _section(text, spec.name)
    for column in spec.columns:
        assert f"| `{column.name}` |" in section, f"{spec.name}.{column.name} is not documented"
        for choice in column.choices:
            assert f"`{choice}`" in section, f"{spec.name}.{column.name}: choice {choice} is not documented"
    for check in spec.checks:
        assert f"`{check}`" in text
