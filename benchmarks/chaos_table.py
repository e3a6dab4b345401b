"""Render benchmarks/results/chaos.json (from ``make chaos``) into docs/reliability.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "chaos.json"
PAGE = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- chaos:begin -->", "<!-- chaos:end -->"
COLUMNS = [
    ("fault", "fault"),
    ("events_in", "events in"),
    ("predictions_out", "committed predictions"),
    ("duplicates", "duplicates"),
    ("lost", "lost"),
    ("recovery_s", "recovery (s)"),
]


def table(rows: list[dict]) -> str:
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        cells = ["-" if row.get(key) is None else str(row[key]) for key, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    if not RESULTS.exists():
        print(f"no {RESULTS}; run `make chaos` first", file=sys.stderr)
        return 1
    rows = json.loads(RESULTS.read_text())
    text = PAGE.read_text()
    if BEGIN not in text or END not in text:
        print("docs/reliability.md has no chaos markers; table not written", file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    PAGE.write_text(head + BEGIN + "\n" + table(rows) + "\n" + END + tail)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
