"""The recipes (`recr1 run`) and the evaluation (`recr1 eval`) end to end, on tiny settings, against the
real recr1d with SmolLM2, real MovieLens-100K, a real ESCI-format file and real BM25.

One recipe starts its own recr1d (the default path); the others share one module-scoped daemon through
--address. Generations are a few tokens long and prompts show two items of history, to keep the file
within its time budget. RECR1_TEST_BLAS_THREADS, when set, caps recr1d's BLAS threads."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib

import pytest

import recr1
from recr1 import cli
from recr1.data.jsonl import read_jsonl

from conftest import Daemon, recr1d_binary
from esci_fixture import ESCI_ROWS, write_esci_csv

PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["--steps", "2", "--prompts-per-step", "1", "--max-new-tokens", "8", "--history", "2", "--train-users", "6",
        "--checkpoint-every", "1", "--seed", "3"]
EXTRA_ESCI = [
    ("q4", "wireless mouse", "P5", "Wireless Mouse, 2.4 GHz", "ergonomic optical mouse with USB receiver", "E"),
    ("q4", "wireless mouse", "P6", "Mouse Pad", "large desk mat", "C"),
    ("q5", "usb receiver mouse", "P5", "Wireless Mouse, 2.4 GHz", "ergonomic optical mouse with USB receiver", "E"),
    ("q6", "trail running shoes", "P1", "Men's Running Shoes, Lightweight", "breathable mesh trainers", "S"),
    ("q6", "trail running shoes", "P7", "Trail Runners", "grippy outsole running shoes for trails", "E"),
    ("q7", "burr coffee grinder", "P4", "Coffee Grinder", "burr grinder", "E"),
    ("q8", "desk mat", "P6", "Mouse Pad", "large desk mat", "E"),
    ("q9", "shoe laces", "P3", "Shoe Laces", "replacement laces, 120 cm", "E"),
]


def blas_args():
    threads = os.environ.get("RECR1_TEST_BLAS_THREADS")
    return ["--blas-threads", threads] if threads else []


def run_cli(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def metrics_of(out):
    return list(read_jsonl(out / "metrics.jsonl"))


def check_run_folder(out, recipe, steps, phases):
    """What every finished run leaves behind."""
    summary = json.loads((out / "run.json").read_text())
    assert summary["recipe"] == recipe and summary["status"] == "finished" and summary["steps_done"] == steps
    records = metrics_of(out)
    assert [r["step"] for r in records] == list(range(1, steps + 1))
    assert [r["phase"] for r in records] == phases
    for record in records:
        assert record["seconds"] > 0 and record["elapsed"] >= record["seconds"] * 0.5
    for step in range(1, steps + 1):   # --checkpoint-every 1
        assert (out / "checkpoints" / f"step-{step:04d}" / "trainer.json").is_file()
    final = out / "checkpoints" / "final"
    assert summary["checkpoint"] == str(final) and (final / "adapter_model.safetensors").stat().st_size > 0
    curves = (out / "curves.png").read_bytes()
    assert curves.startswith(PNG) and len(curves) > 10_000
    return summary, records


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One recr1d with SmolLM2 for the recipes that take --address."""
    folder = tmp_path_factory.mktemp("shared-recr1d")
    (folder / "recr1d.toml").write_text("seed = 11\nlearning_rate = 0.0002\n")
    address = f"ipc://{folder}/recr1d.sock"
    # The recipes save their checkpoints in their own --out folders, under pytest's base folder.
    daemon = Daemon(["--listen", address, "--config", str(folder / "recr1d.toml"), "--state-dir", str(folder / "state"),
                     "--allow-dir", str(tmp_path_factory.getbasetemp()), *blas_args()], cwd=folder)
    daemon.wait_ready(address, timeout=120)
    yield address
    assert daemon.stop() == 0


# --- Arguments -------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, code, message", [
    (["run", "rec-r1-movies"], 2, "recipe: unknown 'rec-r1-movies'"),
    (["run", "reczero", "--steps", "0"], 2, "--steps: at least 1, got 0"),
    (["run", "reczero", "--group-size", "1"], 2, "--group-size: GRPO compares samples of a prompt"),
    (["run", "reczero", "--samples", "4"], 2, "--samples: not an option of reczero"),
    (["run", "rlrf4rec", "--group-size", "4"], 2, "--group-size: not an option of rlrf4rec"),
    (["run", "rlrf4rec", "--samples", "1"], 2, "--samples: a DPO pair needs at least 2"),
    (["run", "rlrf4rec", "--cold-start-steps", "2"], 2, "--cold-start-steps: rlrf4rec has no answer format"),
    (["run", "reczero", "--top-p", "1.5"], 2, "--top-p: in (0, 1]"),
    (["run", "rec-r1-seqrec", "--cold-start-rounding", "stochastic"], 2,
     "--cold-start-rounding: not an option of rec-r1-seqrec"),
    (["run", "reczero", "--learning-rate", "-1"], 2, "--learning-rate: a positive number"),
    (["run", "reczero", "--fractions", "0.5,0.5"], 2, "--fractions: three values (train, validation, test), got 2"),
    (["run", "rec-r1-search"], 2, "--esci: rec-r1-search needs an ESCI-format file"),
    (["run", "rec-r1-search", "--esci", "/no/such/shop.csv"], 2, "--esci: no such file /no/such/shop.csv"),
    (["run", "reczero", "--esci", "shop.csv"], 2, "--esci: only rec-r1-search reads an ESCI file"),
    (["run", "reczero", "--data", "/no/such/folder"], 2, "--data: no such folder /no/such/folder"),
    (["run", "reczero", "--set", "lora_rnak=8"], 2, "--set: unknown recr1d setting 'lora_rnak'"),
    (["run", "reczero", "--set", "lora_rank=eight"], 2, "--set: lora_rank takes an integer, got 'eight'"),
    # Ranges and choices come from the daemon's own schema (recr1d config --schema).
    (["run", "reczero", "--set", "lora_rank=0"], 2, "--set: lora_rank is 0, outside 1...4096"),
    (["run", "reczero", "--set", "lr_schedule=steps"], 2, "--set: lr_schedule is 'steps', not one of constant, linear, cosine"),
    (["run", "reczero", "--model", "/no/such/model.gguf"], 2, "--model: no such file or folder"),
    (["eval"], 2, "--data: give the prompt folder (--data DIR) or a run (--run DIR)"),
    (["eval", "--run", "/no/such/run"], 2, "--run: /no/such/run has no run.json"),
])
def test_bad_arguments_name_the_option(argv, code, message, tmp_path, capsys):
    if argv[0] == "run":
        argv = argv[:2] + ["--out", str(tmp_path / "run")] + argv[2:]
    got, _, err = run_cli(argv, capsys)
    assert got == code, err
    assert message in err, err
    assert not (tmp_path / "run" / "recr1d").exists(), "no daemon is started for a bad argument"


def test_bad_data_and_binary_fail_before_training(tmp_path, capsys, monkeypatch):
    assert cli.main(["data", "movielens", "--task", "rating", "--history", "2", "--out", str(tmp_path / "rating")]) == 0
    capsys.readouterr()
    code, _, err = run_cli(["run", "rec-r1-seqrec", "--out", str(tmp_path / "a"), "--data", str(tmp_path / "rating")],
                           capsys)
    assert code == 1 and "record 1 is of task 'rating', this needs 'seqrec'" in err, err
    assert "recr1 data movielens --task seqrec" in err

    not_executable = tmp_path / "recr1d"
    not_executable.write_text("not a program")
    monkeypatch.setenv("RECR1D", str(not_executable))
    code, _, err = run_cli(["run", "reczero", "--out", str(tmp_path / "b"), "--data", str(tmp_path / "rating")], capsys)
    assert code == 1 and f"$RECR1D: {not_executable} is not an executable file" in err, err

    code, _, err = run_cli(["eval", "--data", str(tmp_path / "rating"), "--systems", "baseline,oracle"], capsys)
    assert code == 2 and "--systems: a comma-separated subset of baseline, base, trained" in err, err
    code, _, err = run_cli(["eval", "--data", str(tmp_path / "rating"), "--systems", "trained"], capsys)
    assert code == 2 and "'trained' needs --checkpoint PATH, --exported DIR or --run DIR" in err, err
    code, _, err = run_cli(["eval", "--data", str(tmp_path / "rating"), "--checkpoint", str(tmp_path / "nope")], capsys)
    assert code == 2 and "--checkpoint: no such folder" in err, err


def test_stochastic_cold_start_rounding_keeps_both_nearest_ratings(tmp_path, capsys):
    """--cold-start-rounding stochastic: the rule's estimate rounded up with probability equal to its fraction,
    the same rating for the same record every time, always one of the two whole numbers around the estimate."""
    from recr1.recipes import coldstart, tasks
    ups = [coldstart.stochastic_rating(3.3, f"record-{i}") for i in range(2000)]
    assert set(ups) == {3, 4} and 0.27 < ups.count(4) / len(ups) < 0.33
    assert coldstart.stochastic_rating(3.3, "record-7") == coldstart.stochastic_rating(3.3, "record-7")
    assert {coldstart.stochastic_rating(4.0, f"r{i}") for i in range(50)} == {4}
    assert cli.main(["data", "movielens", "--task", "rating", "--history", "3", "--out", str(tmp_path / "d")]) == 0
    capsys.readouterr()
    records = tasks.read_split(str(tmp_path / "d"), "train", "rating")[:300]
    catalogue = tasks.catalogue_records(str(tmp_path / "d"))
    moved = 0
    for record in records:
        rule, estimate, _, _ = coldstart.rating_rule(record["metadata"], catalogue)
        nearest = coldstart.rating_answer(record, catalogue)
        stochastic = coldstart.rating_answer(record, catalogue, rounding="stochastic")
        assert nearest.endswith(f"<rate>{rule}</rate>")
        rated = int(stochastic.rsplit("<rate>", 1)[1].split("<")[0])
        assert rated in (int(estimate), int(estimate) + 1) and stochastic.split("<rate>")[0] == nearest.split("<rate>")[0]
        moved += rated != rule
    assert 0.1 < moved / len(records) < 0.4   # P(moved) = distance of the estimate to its rounding (0.18 here)
    with pytest.raises(ValueError, match="rounding is one of nearest, stochastic"):
        coldstart.build(None, "rating", str(tmp_path / "d"), records, None, rounding="up")


# --- A recipe that starts its own recr1d, then its evaluation -----------------------------------

def test_recone_starts_recr1d_cold_starts_trains_and_evaluates(tmp_path, capsys, monkeypatch):
    """RecOne end to end: data made by the recipe, recr1d started with the run's TOML, best-of-N and
    rule-written cold-start answers, an SFT step, a GRPO step, checkpoints, curves; then `recr1 eval`
    with the no-LLM baselines, the base model and the checkpoint loaded into a fresh recr1d."""
    monkeypatch.setenv("RECR1D", recr1d_binary())
    out = tmp_path / "recone"
    argv = ["run", "recone", "--out", str(out), *TINY, "--steps", "1", "--group-size", "2", "--cold-start-steps", "1",
            "--cold-start-prompts", "3", "--cold-start-samples", "1", "--cold-start-batch", "2", "--keep-flat-groups",
            "--beta", "0.1", "--lora-rank", "8", "--eval-every", "1", "--eval-users", "2", "--targets-per-user", "2",
            *blas_args()]
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    assert json.loads(stdout)["status"] == "finished"
    summary, records = check_run_folder(out, "recone", 2, ["sft", "grpo"])

    # Progress: one line per step with the reward, loss, KL, seconds and ETA.
    lines = [line for line in err.splitlines() if " step " in line and "validation" not in line]
    assert len(lines) == 2 and lines[0].startswith("[recone] sft step 1/2") and "ETA" in lines[0]
    assert "+ 1 grpo step" in lines[0]   # the GRPO step's time is not known yet after an SFT step
    assert "reward" in lines[1] and "loss" in lines[1] and "kl" in lines[1] and " s  ETA" in lines[1]

    # The daemon ran with the run's settings and was stopped.
    toml = (out / "recr1d" / "recr1d.toml").read_text()
    assert "seed = 3" in toml and "lora_rank = 8" in toml and "learning_rate = 0.0002" in toml
    assert summary["model"]["training_mode"] == "lora" and summary["daemon"]["started"]
    with pytest.raises(recr1.Unavailable):
        recr1.PolicyClient(summary["daemon"]["address"], timeout=2).health()

    # Cold start: every kept answer scores >= 1.5 under the RecZero reward and has a source.
    cold = list(read_jsonl(out / "cold_start.jsonl"))
    assert 1 <= len(cold) <= 3 and summary["cold_start"]["samples"] == len(cold)
    assert all(c["reward"] >= 1.5 and c["source"] in ("base model best-of-N", "rule-written") for c in cold)
    assert all(c["completion"].rstrip().endswith("</rate>") for c in cold)
    sft, grpo = records
    assert sft["loss"] > 0 and sft["applied"] and sft["policy_version"] == 1
    assert grpo["applied"] and grpo["policy_version"] == 2 and grpo["groups_used"] == 1
    assert -2 <= grpo["reward_min"] <= grpo["reward_mean"] <= grpo["reward_max"] <= 2
    assert grpo["completion_tokens_mean"] <= 8
    # The GRPO step's KL is to the cold start (--reference start), where its rollouts came from: none yet.
    assert "the cold start is the KL term's reference" in err and grpo["kl"] == pytest.approx(0, abs=1e-6)
    assert (out / "data" / "test.jsonl").is_file() and summary["data"] == str(out / "data")

    # Validation on 2 held-out prompts where the RL starts (after the cold start) and after the GRPO step.
    points = summary["validation"]
    assert [p["step"] for p in points] == [1, 2] and all(p["users"] == 2 and 0 <= p["mae_all"] <= 4 for p in points)
    assert grpo["validation"] == points[1] and "validation" not in sft
    assert summary["cold_start"]["checkpoint"] == str(out / "checkpoints" / "cold-start")
    assert (out / "checkpoints" / "cold-start" / "trainer.json").is_file()
    assert "validation at step 1: MAE (all)" in err

    code, table, err = run_cli(["eval", "--run", str(out), "--users", "3", *blas_args()], capsys)
    assert code == 0, err
    result = json.loads((out / "eval" / "eval.json").read_text())
    assert result["task"] == "rating" and result["users"] == 3 and result["checkpoint"] == summary["checkpoint"]
    names = [s["name"] for s in result["systems"]]
    assert names[:4] == ["user mean (no LLM)", "user & item mean (no LLM)", "cold-start rule (no LLM)",
                         "base model (prompted)"]
    assert names[4] == "cold start, SFT only (step 1)" and names[5].startswith("trained (step 2, policy v2)")
    # Paired bootstrap intervals: the trained policy against each other system, and each system's mean.
    comparisons = result["comparisons"]
    assert [c["against"] for c in comparisons] == names[:5] and all(c["system"] == names[5] for c in comparisons)
    for c in comparisons:
        # The first 3 test records: 2 targets of one user and 1 of the next, so the bootstrap draws 2 users.
        assert c["metric"] == "mae_all" and c["low"] <= c["difference"] <= c["high"] and c["clusters"] == 2
        assert c["records"] == 3
        assert c["verdict"] in ("better", "worse", "not significant")
    for system in result["systems"]:
        interval = system["interval"]
        assert interval["low"] <= system["metrics"]["mae_all"] <= interval["high"]
        assert interval["mean"] == pytest.approx(system["metrics"]["mae_all"])
    assert "95% paired bootstrap CI over 2 users" in table and result["users_distinct"] == 2
    for system in result["systems"]:
        m = system["metrics"]
        assert m["users"] == 3 and 0 <= m["mae_all"] <= 4 and m["mae_all"] <= m["rmse_all"] <= 4
        assert m["parsed"] is None or 0 <= m["parsed"] <= 1
        if system["kind"] != "baseline":
            assert 0 <= m["format"] <= 1
    assert all(s["metrics"]["parsed"] == 1.0 for s in result["systems"][:3])
    rule = list(read_jsonl(out / "eval" / "outputs-3-baseline.jsonl"))
    assert all(row["prediction"] in (1.0, 2.0, 3.0, 4.0, 5.0) for row in rule)
    for name in names:
        assert name in table
    assert (out / "eval" / "eval.png").read_bytes().startswith(PNG)
    outputs = list(read_jsonl(out / "eval" / "outputs-6-trained.jsonl"))
    assert len(outputs) == 3 and all("completion" in row and "truth" in row for row in outputs)

    # A second evaluation reuses the first one's completions (same systems, same records) and agrees with it.
    code, _, err = run_cli(["eval", "--run", str(out), "--users", "3", "--reuse", str(out / "eval"), "--out",
                            str(out / "eval2"), *blas_args()], capsys)
    assert code == 0, err
    assert err.count("3 of 3 completions from") == 3   # base, cold start, trained
    again = json.loads((out / "eval2" / "eval.json").read_text())
    assert [s["metrics"] for s in again["systems"]] == [s["metrics"] for s in result["systems"]]
    # A larger evaluation takes what it can from the smaller one and generates the rest.
    code, _, err = run_cli(["eval", "--run", str(out), "--users", "4", "--reuse", str(out / "eval"), "--out",
                            str(out / "eval3"), *blas_args()], capsys)
    assert code == 0, err
    assert err.count("3 of 4 completions from") == 3 and "eval trained: 1/1 prompts" in err
    before = list(read_jsonl(out / "eval" / "outputs-6-trained.jsonl"))
    after = list(read_jsonl(out / "eval3" / "outputs-6-trained.jsonl"))
    assert len(after) == 4 and [(r["id"], r["completion"]) for r in after[:3]] == [(r["id"], r["completion"]) for r in before]
    # Another checkpoint with the same name (step 2, policy v2) is another policy: its answers are generated.
    shutil.copytree(out / "checkpoints" / "final", tmp_path / "elsewhere")
    code, _, err = run_cli(["eval", "--run", str(out), "--users", "3", "--checkpoint", str(tmp_path / "elsewhere"),
                            "--systems", "trained", "--reuse", str(out / "eval"), "--out", str(out / "eval4"),
                            *blas_args()], capsys)
    assert code == 0, err
    assert "3 of 3 completions from" in err and "eval trained: 3/3 prompts" in err   # the cold start's, then the trained's

    # The general-ability probe: base model, cold start and final checkpoint, each against the base.
    code, table, err = run_cli(["probe", "--run", str(out), "--max-new-tokens", "3", *blas_args()], capsys)
    assert code == 0, err
    probed = json.loads((out / "probe" / "probe.json").read_text())
    assert [s["name"] for s in probed["systems"]] == ["base model", "cold start (SFT) (step 1)", "recone final (step 2)"]
    assert all(s["questions"] == probed["questions"] >= 100 and 0 <= s["accuracy"] <= 1 for s in probed["systems"])
    assert [c["against"] for c in probed["comparisons"]] == ["base model", "base model"]
    assert all(c["low"] <= c["difference"] <= c["high"] for c in probed["comparisons"])
    assert len(list(read_jsonl(out / "probe" / "probe-1.jsonl"))) == probed["questions"] and "accuracy" in table


# --- Recipes on the shared recr1d --------------------------------------------------------------------

def test_rec_r1_seqrec_on_movielens(shared, tmp_path, capsys):
    out = tmp_path / "seqrec"
    code, _, err = run_cli(["run", "rec-r1-seqrec", "--out", str(out), "--address", shared, *TINY, "--group-size", "2",
                            "--keep-flat-groups"], capsys)
    assert code == 0, err
    summary, records = check_run_folder(out, "rec-r1-seqrec", 2, ["grpo", "grpo"])
    assert summary["daemon"] == {"address": shared, "started": False}
    for record in records:
        assert record["reward_min"] >= -2 and record["reward_max"] <= 1.1
        assert 0 <= record["format_rate"] <= 1 and record["applied"]
        assert record["learning_rate"] == pytest.approx(5e-4)   # sent per request to a daemon we did not start

    # The baseline and the trained checkpoint on the held-out users, through the shared daemon.
    code, table, err = run_cli(["eval", "--run", str(out), "--address", shared, "--systems", "baseline,trained",
                                "--users", "4"], capsys)
    assert code == 0, err
    result = json.loads((out / "eval" / "eval.json").read_text())
    baseline, text_baseline, rule_baseline, trained = result["systems"]
    assert baseline["name"] == "BM25, history titles (no LLM)" and trained["kind"] == "trained"
    assert text_baseline["name"] == "BM25, history titles+years+genres (no LLM)"
    assert rule_baseline["name"] == "BM25, cold-start rule query (no LLM)"
    for system in result["systems"]:
        m = system["metrics"]
        for key in ("ndcg@10", "recall@10", "ndcg@100", "recall@100"):
            assert 0 <= m[key] <= 1
        assert m["ndcg@10"] <= m["recall@10"] + 1e-9 or m["recall@10"] == 1.0
        assert m["recall@10"] <= m["recall@100"]
    assert baseline["metrics"]["answered"] == 1.0
    catalogue = {r["id"]: r for r in read_jsonl(out / "data" / "catalogue.jsonl")}
    test = {r["id"]: r for r in read_jsonl(out / "data" / "test.jsonl")}
    for index, field in ((1, "title"), (2, "text")):
        rows = list(read_jsonl(out / "eval" / f"outputs-{index}-baseline.jsonl"))
        assert len(rows) == 4
        for row in rows:
            history = test[row["id"]]["metadata"]["history"]
            assert row["query"] == " ".join(catalogue[i][field] for i in history)
    assert "NDCG@10" in table and "Recall@100" in table

    # The base model cannot be evaluated on a daemon that has trained.
    code, _, err = run_cli(["eval", "--run", str(out), "--address", shared, "--systems", "base", "--users", "1"],
                           capsys)
    assert code == 1 and "serves policy version" in err and "not the base model" in err, err


def test_rec_r1_search_on_an_esci_file(shared, tmp_path, capsys):
    shop = tmp_path / "shop.csv"
    write_esci_csv(shop, ESCI_ROWS + EXTRA_ESCI)
    out = tmp_path / "search"
    code, _, err = run_cli(["run", "rec-r1-search", "--out", str(out), "--esci", str(shop), "--address", shared,
                            *TINY, "--group-size", "2", "--fractions", "0.5,0,0.5", "--keep-flat-groups"], capsys)
    assert code == 0, err
    _, records = check_run_folder(out, "rec-r1-search", 2, ["grpo", "grpo"])
    train = list(read_jsonl(out / "data" / "train.jsonl"))
    assert train and all(r["metadata"]["catalogue"] == "shop" for r in train)
    assert all(-2 <= r["reward_mean"] <= 1.1 for r in records)

    code, table, err = run_cli(["eval", "--run", str(out), "--systems", "baseline", "--users", "0"], capsys)
    assert code == 0, err
    result = json.loads((out / "eval" / "eval.json").read_text())
    (baseline,) = result["systems"]
    assert baseline["name"] == "BM25, shopper's query (no LLM)" and baseline["metrics"]["users"] >= 1
    # The shopper's own words find their exact products in this small catalogue.
    assert baseline["metrics"]["recall@100"] > 0 and baseline["metrics"]["ndcg@10"] > 0


def test_reczero_with_a_reward_plugin_process(shared, tmp_path, capsys):
    """RecZero scored by the reward plugin as a separate process (--reward ADDRESS)."""
    address = f"ipc://{tmp_path}/reczero.sock"
    log = open(tmp_path / "plugin.log", "w")
    plugin = subprocess.Popen([sys.executable, "-m", "recr1.rewards.reczero", address], stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "listening on" not in (tmp_path / "plugin.log").read_text():
            assert plugin.poll() is None and time.monotonic() < deadline, (tmp_path / "plugin.log").read_text()
            time.sleep(0.05)
        out = tmp_path / "reczero"
        code, _, err = run_cli(["run", "reczero", "--out", str(out), "--address", shared, "--reward", address, *TINY,
                                "--group-size", "2", "--keep-flat-groups"], capsys)
        assert code == 0, err
    finally:
        plugin.send_signal(signal.SIGTERM)
        assert plugin.wait(15) == 0
        log.close()
    _, records = check_run_folder(out, "reczero", 2, ["grpo", "grpo"])
    for record in records:
        assert -2 <= record["reward_min"] <= record["reward_max"] <= 2 and record["unscored"] == 0
        assert record["sequences"] == 2 and record["tokens"] > 2 * 100   # prompt tokens count too


def check_rlrf4rec_records(records, low=0.0, high=1.0):
    for record in records:
        assert low <= record["reward_min"] <= record["reward_max"] <= high
        if record["pairs"]:
            assert record["chosen_reward_mean"] > record["rejected_reward_mean"]
            assert record["applied"] and record["loss"] > 0
            assert record["margin"] == pytest.approx(record["chosen_rewards"] - record["rejected_rewards"], abs=1e-6)
        else:
            assert record["skipped"].startswith("no pair")


def test_rlrf4rec_with_its_ndcg_reward(shared, tmp_path, capsys):
    """The built-in reward: BM25 NDCG of the user's next movie with the text as the query. Short texts of a
    small model often all score 0, so a step may have no pair; each record must say which."""
    out = tmp_path / "rlrf4rec"
    code, _, err = run_cli(["run", "rlrf4rec", "--out", str(out), "--address", shared, *TINY, "--prompts-per-step", "2",
                            "--samples", "3", "--max-new-tokens", "16"], capsys)
    assert code == 0, err
    _, records = check_run_folder(out, "rlrf4rec", 2, ["dpo", "dpo"])
    check_rlrf4rec_records(records)


def test_rlrf4rec_makes_dpo_pairs_from_a_plugin(shared, tmp_path, capsys):
    """With a reward plugin that gives distinct texts distinct rewards, every user yields a best/worst pair and
    each step is a DPO update."""
    address = f"ipc://{tmp_path}/distinct.sock"
    stop, ready = threading.Event(), threading.Event()

    def distinct(items):  # a stable value in [0, 1) per text: ties only between identical texts
        return [zlib.crc32(item.completion.encode()) / 2**32 for item in items]

    server = threading.Thread(target=recr1.serve_reward, args=(distinct, address),
                              kwargs={"stop_event": stop, "ready_event": ready}, daemon=True)
    server.start()
    assert ready.wait(30)
    try:
        out = tmp_path / "rlrf4rec"
        code, _, err = run_cli(["run", "rlrf4rec", "--out", str(out), "--address", shared, *TINY, "--prompts-per-step", "2",
                                "--samples", "3", "--max-new-tokens", "16", "--reward", address], capsys)
        assert code == 0, err
    finally:
        stop.set()
        server.join(15)
    _, records = check_run_folder(out, "rlrf4rec", 2, ["dpo", "dpo"])
    assert all(record["pairs"] == 2 for record in records), records
    check_rlrf4rec_records(records)
    assert "margin" in err
