"""The docs site's settings table, generated from :class:`har.settings.Settings`.

``python -m har settings-table --write`` (or ``make docs-settings``) rewrites the table
between ``<!-- settings:start -->`` and ``<!-- settings:end -->`` in ``docs/settings.md``;
a unit test (``tests/unit/cli/test_settings_docs.py``) fails when the committed table differs.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from pydantic.fields import FieldInfo

from har.settings import PROJECT_ROOT, Settings

START = "<!-- settings:start -->"
END = "<!-- settings:end -->"
#: The page that carries the table (``make docs`` builds the site from ``docs/``).
PAGE = PROJECT_ROOT / "docs" / "settings.md"


def _default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if isinstance(value, bool):
        text = "1" if value else "0"
    elif isinstance(value, Enum):
        text = str(value.value)
    elif isinstance(value, Path):
        text = value.as_posix()
    elif value is None:
        return "(unset)"
    else:
        text = str(value)
    # defaults under the project folder read the same on every machine
    text = text.replace(PROJECT_ROOT.as_posix(), "<project>")
    return f"`{text}`" if text else "(empty)"


def settings_table() -> str:
    """A markdown table with one row per setting: environment variable, default, description."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        env = f"`{prefix}{name.upper()}`"
        description = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(f"| {env} | {_default(field)} | {description} |")
    return "\n".join(rows) + "\n"


def with_table(text: str, table: str | None = None) -> str:
    """``text`` with the part between the markers replaced by ``table`` (default: generated).

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the settings page needs {START} ... {END} around the table")
    table = settings_table() if table is None else table
    return text[: start + len(START)] + "\n" + table + text[end:]


def write_page(path: Path = PAGE) -> bool:
    """Rewrite the table in ``path``; True if the file changed."""
    old = path.read_text(encoding="utf-8")
    new = with_table(old)
    if new != old:
        path.write_text(new, encoding="utf-8")
    return new != old
