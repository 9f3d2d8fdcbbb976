"""The recipes' progress lines: the ETA of a run of several phases."""

import io

from recr1.recipes.progress import Progress


def test_eta_counts_each_phase_at_its_own_pace_and_names_the_untimed():
    progress = Progress("r", [("sft", 3), ("grpo", 2)], stream=io.StringIO())
    progress.step({"step": 1, "phase": "sft", "seconds": 10.0})
    assert progress.eta(1) == (20.0, [("grpo", 2)])
    assert progress.eta_text(1) == "20 s + 2 grpo steps"
    progress.step({"step": 2, "phase": "sft", "seconds": 20.0})
    progress.step({"step": 3, "phase": "sft", "seconds": 30.0})
    progress.step({"step": 4, "phase": "grpo", "seconds": 70.0})
    assert progress.eta(4) == (70.0, [])   # one grpo step left at 70 s; the SFT pace no longer counts
    assert progress.eta(5) == (0.0, [])
    assert "ETA 1m10s" in progress.stream.getvalue().splitlines()[-1]
