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

    plan: the run's phases in order with their steps, e.g. [("sft", 24), ("grpo", 6)]; the run has their sum.
    The ETA is the mean duration of a phase's last steps times its steps left, and a later phase whose steps
    have not been timed yet is named instead of guessed ("+ 6 grpo steps"), since an SFT step tells nothing
    of a GRPO step's time."""

    def __init__(self, name, plan, metrics_path=None, stream=None, window=5):
        self.name = name
        self.plan = [(phase, steps) for phase, steps in plan if steps]
        self.total = sum(steps for _, steps in self.plan)
        self.stream = stream or sys.stderr
        self.window = window
        self.started = time.monotonic()
        self.durations = {}
        self.records = []
        self._file = open(metrics_path, "a", encoding="utf-8") if metrics_path else None

    def note(self, message):
        print(f"[{self.name}] {message}", file=self.stream, flush=True)

    def _mean(self, phase):
        recent = self.durations.get(phase, [])[-self.window:]
        return sum(recent) / len(recent) if recent else None

    def eta(self, done):
        """(seconds left that can be estimated, phases left whose step time is unknown: [(phase, steps)])."""
        seconds, unknown, before = 0.0, [], 0
        for name, steps in self.plan:
            left = min(steps, max(0, before + steps - done))
            before += steps
            if left == 0:
                continue
            mean = self._mean(name)
            if mean is None:
                unknown.append((name, left))
            else:
                seconds += left * mean
        return seconds, unknown

    def eta_text(self, done):
        seconds, unknown = self.eta(done)
        text = duration(seconds)
        for name, steps in unknown:
            text += f" + {steps} {name} step{'s' if steps != 1 else ''}"
        return text

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
        parts.append(f"ETA {self.eta_text(record['step'])}")
        if record.get("skipped"):
            parts.append(f"(no update: {record['skipped']})")
        if record.get("checkpoint"):
            parts.append(f"checkpoint {record['checkpoint']}")
        print("  ".join(parts), file=self.stream, flush=True)

    def close(self):
        if self._file:
            self._file.close()
            self._file = None
