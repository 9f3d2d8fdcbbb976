"""The training loop of the recipes, run from Python against recr1d: generate -> reward -> update.

A run's folder (--out):

    run.json              settings, data, daemon, final checkpoint, status
    metrics.jsonl         one object per step (every phase)
    curves.png            reward, loss and KL (DPO: margin) against the step
    cold_start.jsonl      RecOne's SFT samples (when there is a cold start)
    checkpoints/step-N    every --checkpoint-every steps, and checkpoints/final
    data/                 the prompt files, when --data was not given
    recr1d/               recr1d.toml, recr1d.log and the state directory of the daemon the run started"""

import json
import os
import pathlib
import random
import statistics
import time

from recr1.batches import dpo_batch, grpo_batch, sft_batch
from recr1.client import PolicyClient
from recr1.data import catalogue as catalogue_module
from recr1.data import esci, movielens, records as records_module
from recr1.data.jsonl import write_jsonl
from recr1.recipes import coldstart, evaluate, plots, tasks
from recr1.recipes.daemon import LocalDaemon, folders_of
from recr1.recipes.progress import Progress, duration

DAEMON_KEYS = ("model", "training_mode", "lora_rank", "lora_alpha", "blas_threads")


def prepare_data(recipe, options, out, note):
    """The prompt folder: --data as given, or made now under OUT/data from MovieLens or the ESCI file."""
    if options.get("data"):
        return options["data"]
    folder = os.path.join(out, "data")
    fractions = options["fractions"]
    if recipe.task == "search":
        judgements = esci.load(options["esci"])
        name = os.path.splitext(os.path.basename(options["esci"]))[0]
        splits = esci.build(judgements, name, options["split_seed"], fractions)
        catalogue_lines = list(esci.catalogue_records(judgements))
    else:
        data = movielens.load(options["dataset"], options.get("movielens_path"))
        splits = records_module.build(data, recipe.task, options["split_seed"], fractions, options["history"],
                                      targets_per_user=options.get("targets_per_user", 1))
        catalogue_lines = list(catalogue_module.movielens_records(data))
    for split, rows in splits.items():
        write_jsonl(os.path.join(folder, f"{split}.jsonl"), rows)
    write_jsonl(os.path.join(folder, "catalogue.jsonl"), catalogue_lines)
    note(f"data: {', '.join(f'{len(rows)} {split}' for split, rows in splits.items())} prompts in {folder}")
    return folder


class Sampler:
    """Training prompts in a seeded order, epoch after epoch."""

    def __init__(self, records, seed):
        self.records = list(records)
        self.random = random.Random(seed)
        self.order = []

    def take(self, count):
        out = []
        while len(out) < count:
            if not self.order:
                self.order = list(self.records)
                self.random.shuffle(self.order)
            out.append(self.order.pop())
        return out


def _value(result):
    if result is None:
        return None, {}
    if isinstance(result, (tuple, list)):
        return float(result[0]), dict(result[1] or {})
    return float(result), {}


def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _update_fields(reply):
    m = reply.metrics
    fields = {"loss": m.loss, "kl": m.kl, "clip_fraction": m.clip_fraction, "entropy": m.entropy,
              "grad_norm": m.grad_norm, "learning_rate": m.learning_rate, "tokens": m.tokens,
              "sequences": m.sequences, "update_seconds": m.seconds, "policy_version": reply.policy_version,
              "optimizer_step": reply.step, "applied": reply.applied}
    if m.log_ratio_abs_max:   # GRPO on fresh rollouts: how far the trainer's log-probs are from the sampler's
        fields.update(log_ratio_abs_mean=m.log_ratio_abs_mean, log_ratio_abs_max=m.log_ratio_abs_max)
    if not reply.applied:
        fields["skipped"] = reply.skipped_reason or "not applied"
    return fields


def _rollouts(client, batch, options, n, step):
    started = time.monotonic()
    reply = client.generate([r["messages"] for r in batch], n=n, temperature=options["temperature"],
                            top_p=options["top_p"], max_new_tokens=options["max_new_tokens"],
                            seed=options["seed"] * 1_000_003 + step, stop_strings=options["stop_strings"])
    return reply, time.monotonic() - started


def _score(scorer, task, batch, reply):
    started = time.monotonic()
    texts = [[c.text for c in result.completions] for result in reply.results]
    results = iter(scorer(tasks.reward_items(batch, texts)))
    scored = [[_value(next(results)) for _ in group] for group in texts]
    rewards = [r for group in scored for r, _ in group if r is not None]
    formats = [tasks.format_ok(task, d) for group in scored for r, d in group if r is not None]
    formats = [f for f in formats if f is not None]
    fields = {"reward_mean": _mean(rewards), "reward_std": statistics.pstdev(rewards) if len(rewards) > 1 else None,
              "reward_min": min(rewards) if rewards else None, "reward_max": max(rewards) if rewards else None,
              "format_rate": sum(formats) / len(formats) if formats else None,
              "unscored": sum(1 for group in scored for r, _ in group if r is None),
              "completion_tokens_mean": _mean([len(c.token_ids) for res in reply.results for c in res.completions])}
    if texts and texts[0]:
        fields["sample"] = texts[0][0][:400]
    for key in ("ndcg", "accuracy", "abs_error"):
        values = [d[key] for group in scored for r, d in group if r is not None and key in d]
        if values:
            fields[key] = _mean(values)
    fields["reward_seconds"] = time.monotonic() - started
    return scored, fields


def grpo_step(client, scorer, task, batch, options, step, lr_override):
    reply, generate_seconds = _rollouts(client, batch, options, options["group_size"], step)
    scored, fields = _score(scorer, task, batch, reply)
    # Flat groups are left out by recr1d (GrpoConfig.drop_flat_groups): the rule lives with the losses, where
    # jobs use it too. Here only groups with fewer than two scored samples are set aside.
    groups = []
    for result, group in zip(reply.results, scored):
        samples = [(c.rollout_id, r) for c, (r, _) in zip(result.completions, group) if r is not None]
        if len(samples) >= 2:
            groups.append(samples)
    record = {"phase": "grpo", **fields, "generate_seconds": generate_seconds, "groups_flat": len(batch) - len(groups)}
    if groups:
        batch_message = grpo_batch(groups, beta=options["beta"], epsilon_low=options["clip"], kl=options["kl"],
                                   aggregation=options["aggregation"], scaling=options["scaling"],
                                   entropy_coefficient=options["entropy_coefficient"],
                                   objective=options.get("objective", "grpo"),
                                   drop_flat_groups=not options["keep_flat_groups"])
        update = client.update(grpo=batch_message, learning_rate=lr_override)
        record.update(_update_fields(update))
        record["groups_flat"] += update.metrics.groups_flat
    else:
        record["skipped"] = "no group has two scored samples"
    record["groups_used"] = len(batch) - record["groups_flat"]
    return record


def dpo_step(client, scorer, task, batch, options, step, lr_override):
    reply, generate_seconds = _rollouts(client, batch, options, options["samples"], step)
    scored, fields = _score(scorer, task, batch, reply)
    # recr1d pairs each group's best with its worst (DpoBatch.groups, DPO.bestAndWorst), as jobs do.
    groups = []
    for result, group in zip(reply.results, scored):
        samples = [(c.rollout_id, r) for c, (r, _) in zip(result.completions, group) if r is not None and c.token_ids]
        if len(samples) >= 2:
            groups.append(samples)
    # The plugin's rewards of the pairs' two sides, for the record (a group pairs only when they differ).
    distinct = [[r for _, r in g] for g in groups if max(r for _, r in g) > min(r for _, r in g)]
    out = {"phase": "dpo", **fields, "generate_seconds": generate_seconds, "pairs": 0,
           "chosen_reward_mean": _mean([max(g) for g in distinct]),
           "rejected_reward_mean": _mean([min(g) for g in distinct])}
    if groups:
        update = client.update(dpo=dpo_batch([], groups=groups, beta=options["beta"]), learning_rate=lr_override)
        out.update(_update_fields(update))
        out.update({"pairs": update.metrics.pairs, "margin": update.metrics.margin,
                    "chosen_rewards": update.metrics.chosen_rewards, "rejected_rewards": update.metrics.rejected_rewards})
    else:
        out["skipped"] = "no pair: no user has two scored texts"
    return out


def end_of_turn(client):
    """The text the chat template puts after an assistant message ("<|im_end|>" for ChatML), so that SFT
    teaches the policy to stop; "" when the template adds nothing."""
    mark = "\u2063recr1-mark\u2063"
    text = client.apply_chat_template([[{"role": "user", "content": "u"}, {"role": "assistant", "content": mark}]],
                                      add_generation_prompt=False).texts[0]
    return text[text.rfind(mark) + len(mark):].strip() if mark in text else ""


def sft_step(client, samples, learning_rate, suffix=""):
    reply = client.update(sft=sft_batch([(s["messages"], s["completion"] + suffix) for s in samples]),
                          learning_rate=learning_rate)
    fields = _update_fields(reply)
    for key in ("kl", "clip_fraction"):   # no reference and no ratio in an SFT step
        fields[key] = None
    return {"phase": "sft", **fields}


class Validation:
    """Greedy answers to a fixed set of held-out validation prompts, judged as `recr1 eval` judges them: the
    metric that says whether training generalises, beside the training reward."""

    def __init__(self, recipe, data_dir, options, note):
        self.task = recipe.task
        self.options = options
        self.records = tasks.read_split(data_dir, "validation", recipe.task)[:options["eval_users"]]
        if not self.records:
            raise tasks.DataError(f"--eval-every: {data_dir}/validation.jsonl has no prompts")
        self.judge = tasks.Judge(recipe.task, data_dir, self.records)
        self.key, self.label, _ = tasks.headline_metric(recipe.task)
        self.note = note
        self.points = []

    def __call__(self, client, step):
        texts, seconds = evaluate.greedy_texts(client, self.records, self.options["max_new_tokens"],
                                               self.options["stop_strings"], batch=16)
        metrics = tasks.summarise(self.task, evaluate.judge_texts(self.judge, self.records, texts))
        point = {"step": step, "seconds": seconds, **metrics}
        self.points.append(point)
        shown = f"{self.label} {metrics.get(self.key):.4f}" if metrics.get(self.key) is not None else "n/a"
        fmt = f", format {metrics['format']:.0%}" if metrics.get("format") is not None else ""
        self.note(f"validation at step {step}: {shown}{fmt} on {len(self.records)} held-out prompts "
                  f"({duration(seconds)})")
        return point


def daemon_settings(options):
    """The recr1d settings (TOML) of a run."""
    settings = {"seed": options["seed"], "learning_rate": options["learning_rate"],
                "lr_schedule": options["lr_schedule"], "warmup_steps": options["warmup_steps"],
                "total_steps": max(1, options["steps"] + options["cold_start_steps"])}
    for key in DAEMON_KEYS:
        if options.get(key) is not None:
            settings[key] = options[key]
    settings.update(options.get("set") or {})
    return settings


def _write_json(path, value):
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
    os.replace(partial, path)


def run(recipe, options, stream=None):
    """Runs a recipe with resolved options (every key of recipe.defaults, plus out, data, esci, address,
    seed, ...). Returns the run summary (also written to OUT/run.json)."""
    out = pathlib.Path(options["out"]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    metrics_path = out / "metrics.jsonl"
    if metrics_path.exists():
        metrics_path.unlink()   # a new run in the same folder starts its own curve
    progress = Progress(recipe.name, [("sft", options["cold_start_steps"]), (recipe.algorithm, options["steps"])],
                        metrics_path, stream=stream)
    note = progress.note
    started = time.monotonic()
    summary = {"recipe": recipe.name, "task": recipe.task, "algorithm": recipe.algorithm, "status": "running",
               "out": str(out), "metrics": str(metrics_path), "curves": str(out / "curves.png"),
               "options": {k: v for k, v in options.items() if k not in ("out",)}}
    data_dir = prepare_data(recipe, options, str(out), note)
    summary["data"] = os.path.abspath(data_dir)
    train = tasks.read_split(data_dir, "train", recipe.task)
    if options.get("train_users"):
        train = train[:options["train_users"]]
    if not train:
        raise tasks.DataError(f"--data: {data_dir}/train.jsonl has no prompts "
                              "(a bigger data set, or other --fractions)")
    scorer = tasks.reward_function(recipe.task, data_dir, train, options["reward_k"], options.get("reward"))
    note(f"{len(train)} training prompts; {options['steps']} {recipe.algorithm.upper()} steps of "
         f"{options['prompts_per_step']} prompts x {options['samples' if recipe.algorithm == 'dpo' else 'group_size']} "
         f"samples, max {options['max_new_tokens']} new tokens"
         + (f"; first {options['cold_start_steps']} SFT cold-start steps" if options["cold_start_steps"] else ""))

    daemon = None
    if options.get("address"):
        client = PolicyClient(options["address"], timeout=options["timeout"])
        lr_override = options["learning_rate"]
        summary["daemon"] = {"address": options["address"], "started": False}
        note(f"using recr1d at {options['address']} (its own training settings; learning rate sent per request)")
    else:
        settings = daemon_settings(options)
        daemon = LocalDaemon(out / "recr1d", settings, binary=options.get("recr1d"), log=note,
                             allowed_dirs=[out] + folders_of(options.get("from_checkpoint"))).start()
        client = daemon.client(timeout=options["timeout"])
        lr_override = 0.0   # the daemon's schedule, from recr1d.toml
        summary["daemon"] = {"address": daemon.address, "started": True, "binary": daemon.binary,
                             "config": str(daemon.config_path), "log": str(daemon.log_path), "settings": settings}
    _write_json(out / "run.json", summary)
    info = client.info()
    summary["model"] = {"name": info.model.name, "source": info.model.source, "training_mode": info.model.training_mode,
                        "trainable_parameters": info.model.trainable_parameters}
    checkpoints = out / "checkpoints"
    step = 0
    try:
        if options.get("from_checkpoint"):
            # steps count on from 0 in this run
            loaded = client.load_checkpoint(options["from_checkpoint"], as_reference=options.get("reference") == "start")
            summary["cold_start"] = {"checkpoint": options["from_checkpoint"], "loaded": True}
            note(f"starting from {options['from_checkpoint']} (step {loaded.step}, policy version {loaded.policy_version})"
                 + ("" if loaded.reference_is_base else "; it is the KL term's reference too"))
        if options["cold_start_steps"]:
            pool = Sampler(train, options["seed"] + 1).take(min(options["cold_start_prompts"], len(train)))
            samples, counts = coldstart.build(
                client, recipe.task, data_dir, pool, scorer, samples=options["cold_start_samples"],
                temperature=options["temperature"], top_p=options["top_p"], max_new_tokens=options["max_new_tokens"],
                seed=options["seed"], stop_strings=options["stop_strings"], progress=note,
                rounding=options.get("cold_start_rounding", "nearest"))
            write_jsonl(out / "cold_start.jsonl", samples)
            summary["cold_start"] = {"prompts": len(pool), "samples": len(samples), "sources": counts,
                                     "file": str(out / "cold_start.jsonl")}
            if not samples:
                raise tasks.DataError("cold start: no sample reached the threshold; nothing to fine-tune on")
            sft_sampler = Sampler(samples, options["seed"] + 2)
            suffix = end_of_turn(client)
            for _ in range(options["cold_start_steps"]):
                step += 1
                t0 = time.monotonic()
                record = sft_step(client, sft_sampler.take(options["cold_start_batch"]),
                                  options["cold_start_learning_rate"], suffix)
                record.update({"step": step, "phase_step": step, "seconds": time.monotonic() - t0})
                _checkpoint(client, record, checkpoints, step, options)
                progress.step(record)
        if options["cold_start_steps"]:   # the policy the RL starts from, for the evaluation to compare with
            summary["cold_start"]["checkpoint"] = client.save_checkpoint(str(checkpoints / "cold-start")).path
            if options.get("reference") == "start":   # RL keeps its KL to the cold start, not to the base
                client.load_checkpoint(summary["cold_start"]["checkpoint"], as_reference=True)
                note("the cold start is the KL term's reference")
        validation = None
        if options.get("eval_every"):
            validation = Validation(recipe, data_dir, options, note)
            summary["validation"] = validation.points
            validation(client, step)   # where the RL starts from: the base model, or the cold start's policy
        sampler = Sampler(train, options["seed"])
        one_step = dpo_step if recipe.algorithm == "dpo" else grpo_step
        for phase_step in range(1, options["steps"] + 1):
            step += 1
            t0 = time.monotonic()
            record = one_step(client, scorer, recipe.task, sampler.take(options["prompts_per_step"]), options, step,
                              lr_override)
            record.update({"step": step, "phase_step": phase_step, "seconds": time.monotonic() - t0})
            if validation and (phase_step % options["eval_every"] == 0 or phase_step == options["steps"]):
                record["validation"] = validation(client, step)
            _checkpoint(client, record, checkpoints, step, options)
            progress.step(record)
        final = client.save_checkpoint(str(checkpoints / "final"))
        summary.update({"status": "finished", "checkpoint": final.path, "policy_version": final.policy_version,
                        "optimizer_steps": final.step})
        note(f"final checkpoint {final.path} (policy version {final.policy_version})")
    except KeyboardInterrupt:
        summary["status"] = "interrupted"
        raise
    except Exception as exc:
        summary.update({"status": "failed", "error": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        summary.update({"steps_done": step, "seconds": time.monotonic() - started})
        progress.close()
        client.close()
        if daemon is not None:
            daemon.stop()
        if progress.records:
            plots.training_curves(progress.records, str(out / "curves.png"), _title(recipe, options, train),
                                  validation=summary.get("validation"), validation_metric=tasks.headline_metric(recipe.task))
        _write_json(out / "run.json", summary)
    note(f"done in {duration(summary['seconds'])}: {metrics_path}, {out / 'curves.png'}, {out / 'run.json'}")
    return summary


def _title(recipe, options, train):
    samples = options["samples"] if recipe.algorithm == "dpo" else options["group_size"]
    cold = (f"{options['cold_start_steps']} SFT steps (lr {options['cold_start_learning_rate']:g}), then "
            if options["cold_start_steps"] else "")
    return (f"{recipe.name} on SmolLM2-135M: {cold}{options['steps']} {recipe.algorithm.upper()} steps x "
            f"{options['prompts_per_step']} prompts x {samples} samples, lr {options['learning_rate']:g}, "
            f"beta {options['beta']:g}, T {options['temperature']:g}, max {options['max_new_tokens']} new tokens "
            f"({len(train)} training prompts)")


def _checkpoint(client, record, folder, step, options):
    every = options["checkpoint_every"]
    if every and step % every == 0:
        saved = client.save_checkpoint(str(folder / f"step-{step:04d}"))
        record["checkpoint"] = saved.path
