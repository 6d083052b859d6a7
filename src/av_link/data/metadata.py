"""Reading a dataset's ``metadata.jsonl`` / ``metadata.csv`` and its time columns."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["read_metadata", "as_times"]


def read_metadata(path: Path) -> List[Tuple[int, Optional[Dict[str, Any]], str]]:
    """-> (line number, row or None, problem) per data line."""
    rows: List[Tuple[int, Optional[Dict[str, Any]], str]] = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                return rows
            for row in reader:
                line = reader.line_num
                if None in row:  # more cells than header columns
                    rows.append((line, None, "more cells than header columns"))
                    continue
                # an empty csv cell is a missing value
                rows.append((line, {k: (v if v != "" else None) for k, v in row.items()}, ""))
        return rows
    with open(path, encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                rows.append((line_no, None, f"invalid JSON ({err.msg})"))
                continue
            if not isinstance(row, dict):
                rows.append((line_no, None, "not a JSON object"))
                continue
            rows.append((line_no, row, ""))
    return rows


def as_times(value: Any) -> Any:
    """A number, a list of numbers, or a csv cell holding either as JSON text -> float / list of float."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return [float(v) for v in value]
    return value
