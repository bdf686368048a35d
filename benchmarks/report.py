"""The one writer of a benchmark's results pair: ``<out>.json`` (the data) and ``<out>.md``
(a title, a paragraph saying what was run, and one table)."""

from __future__ import annotations

import json
from pathlib import Path


def write_table(out: Path, payload: dict, title: str, intro: str, columns: list[str], right_from: int,
                rows: list[list[str]]) -> None:
    """Columns from index ``right_from`` on are right-aligned (numbers)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    align = "|".join("---:" if i >= right_from else "---" for i in range(len(columns)))
    lines = [f"# {title}", "", intro, "", "| " + " | ".join(columns) + " |", f"|{align}|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
