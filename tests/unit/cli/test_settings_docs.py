"""The docs site's settings table (docs/settings.md) is the one generated from ``har.settings.Settings``."""

from __future__ import annotations

import pytest

from har.cli.settings_docs import END, PAGE, START, settings_table, with_table
from har.settings import Settings


def test_settings_page_table_is_the_generated_one() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert with_table(text) == text, "docs/settings.md's table is stale: run make docs-settings"


def test_every_setting_has_a_row_with_its_default_and_description() -> None:
    rows = settings_table().splitlines()[2:]
    assert len(rows) == len(Settings.model_fields)
    for row, (name, field) in zip(rows, Settings.model_fields.items(), strict=True):
        assert row.startswith(f"| `HAR_{name.upper()}` |")
        assert field.description and field.description.split()[0] in row
    assert "| `HAR_GRPC_PORT` | `50051` |" in settings_table()
    assert "| `HAR_MONITORING` | `1` |" in settings_table()


def test_with_table_replaces_only_between_the_markers() -> None:
    text = f"before\n{START}\nold table\n{END}\nafter\n"
    assert with_table(text, "| new |\n") == f"before\n{START}\n| new |\n{END}\nafter\n"
    with pytest.raises(ValueError, match="settings:start"):
        with_table("no markers here")
