"""Progress on stderr (one line per step: reward, loss, KL, seconds, ETA) and the metrics JSONL file
(one object per step, flushed as it is written)."""

import json
import math
import sys
import time


def duration(seconds):
    """"42 s", "3m05s", "1h02m"."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _number(value, digits=4):
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000 or (value != 0 and abs(value) < 10 ** -digits):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


class Progress:
    """Writes step records to metrics_path and one line per step to stream.

    total: the steps of the whole run (every phase); the ETA is the mean duration of the last steps of the
    current phase times the steps left."""

    def __init__(self, name, total, metrics_path=None, stream=None, window=5):
        self.name = name
        self.total = total
        self.stream = stream or sys.stderr
        self.window = window
        self.started = time.monotonic()
        self.durations = {}
        self.records = []
        self._file = open(metrics_path, "a", encoding="utf-8") if metrics_path else None

    def note(self, message):
        print(f"[{self.name}] {message}", file=self.stream, flush=True)

    def eta(self, phase, done):
        recent = self.durations.get(phase, [])[-self.window:]
        if not recent:
            return None
        return (self.total - done) * sum(recent) / len(recent)

    def step(self, record):
        """record: a dict with at least "step", "phase" and "seconds"."""
        record = dict(record)
        record.setdefault("elapsed", time.monotonic() - self.started)
        self.records.append(record)
        self.durations.setdefault(record["phase"], []).append(record["seconds"])
        if self._file:
            self._file.write(json.dumps(record, sort_keys=False) + "\n")
            self._file.flush()
        parts = [f"[{self.name}] {record['phase']} step {record['step']}/{self.total}"]
        if record.get("reward_mean") is not None:
            parts.append(f"reward {_number(record['reward_mean'], 3)}")
        if record.get("format_rate") is not None:
            parts.append(f"format {record['format_rate']:.0%}")
        parts.append(f"loss {_number(record.get('loss'))}")
        if record["phase"] == "dpo":
            parts.append(f"margin {_number(record.get('margin'))}")
        else:
            parts.append(f"kl {_number(record.get('kl'))}")
        parts.append(f"{record['seconds']:.1f} s")
        parts.append(f"ETA {duration(self.eta(record['phase'], record['step']))}")
        if record.get("skipped"):
            parts.append(f"(no update: {record['skipped']})")
        if record.get("checkpoint"):
            parts.append(f"checkpoint {record['checkpoint']}")
        print("  ".join(parts), file=self.stream, flush=True)

    def close(self):
        if self._file:
            self._file.close()
            self._file = None
