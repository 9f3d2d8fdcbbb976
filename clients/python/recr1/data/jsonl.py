"""JSON Lines: one JSON object per line."""

import json
import os


def write_jsonl(path, records):
    """Writes records (dicts) to path, one per line, through a temporary file renamed into place.
    Returns the number written."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    partial = f"{path}.partial"
    count = 0
    with open(partial, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False, sort_keys=False))
            f.write("\n")
            count += 1
    os.replace(partial, path)
    return count


def read_jsonl(path):
    """Yields the objects of a JSONL file; a line that is not a JSON object raises ValueError naming it."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: a JSON object per line, got {type(record).__name__}")
            yield record
