"""`recr1 run RECIPE` and `recr1 eval`: argument parsing, checks that name the bad option, dispatch."""

import argparse
import json
import os
import sys

from recr1.data import movielens
from recr1.data.split import check_fractions
from recr1.errors import RecR1Error
from recr1.recipes import RECIPES, STOP_STRINGS, TASKS
from recr1.recipes.daemon import DaemonError, parse_setting, settings_schema

RUN_OPTIONS = {
    # option: (type, help); the default comes from the recipe (recr1.recipes.RECIPES[...].defaults)
    "steps": (int, "RL steps (GRPO or DPO), after the cold-start steps"),
    "prompts_per_step": (int, "prompts (users, queries) per step"),
    "group_size": (int, "GRPO: samples per prompt"),
    "samples": (int, "RLRF4Rec: texts per user, of which the best and the worst make a DPO pair"),
    "learning_rate": (float, "peak learning rate of the RL steps"),
    "beta": (float, "GRPO: KL coefficient (0 skips the reference); DPO: beta"),
    "clip": (float, "GRPO: clip epsilon"),
    "temperature": (float, "sampling temperature of the rollouts"),
    "top_p": (float, "nucleus sampling of the rollouts"),
    "max_new_tokens": (int, "most new tokens per completion (training and evaluation)"),
    "history": (int, "items of history per prompt, when the recipe makes its MovieLens data"),
    "reward_k": (int, "NDCG cut-off of the retrieval rewards in training"),
    "checkpoint_every": (int, "save a checkpoint every N steps (0: only the final one)"),
    "cold_start_steps": (int, "SFT steps on cold-start answers before the RL steps (RecOne: 4; 0: none)"),
    "cold_start_prompts": (int, "training prompts the cold-start answers are written for"),
    "cold_start_samples": (int, "base-model samples per cold-start prompt (best-of-N; 0: rule-written only)"),
    "cold_start_batch": (int, "cold-start answers per SFT step"),
    "cold_start_learning_rate": (float, "learning rate of the SFT steps"),
    "targets_per_user": (int, "MovieLens targets per user (the last N positions), when the recipe makes its data"),
    "entropy_coefficient": (float, "GRPO: weight of the entropy bonus (0: off)"),
    "eval_every": (int, "greedy validation on --eval-users held-out validation prompts every N RL steps "
                        "(0: off), plotted beside the training reward"),
    "eval_users": (int, "validation prompts of --eval-every (the first N of validation.jsonl)"),
}
POSITIVE = ("steps", "prompts_per_step", "group_size", "samples", "max_new_tokens", "history", "reward_k",
            "cold_start_prompts", "cold_start_batch", "targets_per_user", "eval_users")
NON_NEGATIVE = ("checkpoint_every", "cold_start_steps", "cold_start_samples", "beta", "temperature",
                "entropy_coefficient", "eval_every")
POSITIVE_FLOAT = ("learning_rate", "cold_start_learning_rate", "clip")


DEFAULT_SYSTEMS = "baseline,base,trained"


class UsageError(ValueError):
    """A bad command-line argument; the message names it."""


def _option(name):
    return "--" + name.replace("_", "-")


def add_commands(commands):
    run = commands.add_parser(
        "run", help="train with a recipe: rec-r1-seqrec, rec-r1-search, reczero, recone, rlrf4rec",
        description="Runs a recipe against recr1d (generate -> reward -> update), writing metrics.jsonl, "
                    "checkpoints/, curves.png and run.json into --out. Defaults are each paper's settings scaled "
                    "to a small CPU machine (docs/recipes.md).",
        epilog="recipes:\n" + "\n".join(f"  {r.name:<14} {r.summary}" for r in RECIPES.values()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("recipe", help=", ".join(RECIPES))
    run.add_argument("--out", required=True, help="the run's folder")
    data = run.add_argument_group("data")
    data.add_argument("--data", help="a folder from `recr1 data` (train/validation/test.jsonl, catalogue.jsonl); "
                                     "default: made now under OUT/data")
    data.add_argument("--esci", help="rec-r1-search: an ESCI-format file (.csv, .tsv, .jsonl)")
    data.add_argument("--dataset", default="ml-100k", help="MovieLens data set (default ml-100k)")
    data.add_argument("--movielens-path", help="folder of the MovieLens files (default: the installed package)")
    data.add_argument("--fractions", default="0.8,0.1,0.1", help="train,validation,test split (default 0.8,0.1,0.1)")
    data.add_argument("--split-seed", type=int, default=0,
                      help="fixes the user split when the recipe makes its data (default 0, as `recr1 data`)")
    data.add_argument("--train-users", type=int, default=0, help="use only the first N training prompts (0: all)")
    loop = run.add_argument_group("training (defaults: the recipe's)")
    for name, (kind, text) in RUN_OPTIONS.items():
        loop.add_argument(_option(name), type=kind, help=text)
    loop.add_argument("--kl", choices=("k1", "k2", "k3"), help="GRPO: KL estimator (default k3)")
    loop.add_argument("--aggregation", choices=("token_mean", "sequence_mean", "constant"),
                      help="GRPO: loss aggregation (default token_mean; constant = Dr. GRPO's normaliser)")
    loop.add_argument("--objective", choices=("grpo", "gspo", "cispo"),
                      help="GRPO: the policy term: clipped token ratio (default grpo), clipped sequence ratio (gspo) "
                           "or CISPO's clipped importance weight")
    loop.add_argument("--scaling", choices=("group", "batch", "none"),
                      help="GRPO: advantage scaling by the group's std, the batch's, or none (Dr. GRPO)")
    loop.add_argument("--cold-start-rounding", choices=("nearest", "stochastic"),
                      help="rating: the rule-written cold-start answer's rating is the estimate rounded to the "
                           "nearest whole number (default), or rounded up with probability equal to its fraction, "
                           "so that GRPO's samples still differ at the rating")
    loop.add_argument("--reference", choices=("start", "base"),
                      help="the KL term's reference policy: where the RL starts (the cold start, or --from-checkpoint; "
                           "the default) or the base model")
    loop.add_argument("--keep-flat-groups", action="store_true", default=None,
                      help="GRPO: also update on groups whose rewards are all equal (default: left out, as DAPO)")
    loop.add_argument("--no-stop", action="store_true",
                      help="do not stop generating at the answer's closing tag (</answer>, </rate>)")
    loop.add_argument("--seed", type=int, default=1, help="seeds the daemon, the sampling and the order (default 1)")
    loop.add_argument("--reward", help="address of a reward plugin to score with instead of the built-in reward")
    loop.add_argument("--from-checkpoint", metavar="PATH",
                      help="start the RL steps from this checkpoint (e.g. another run's checkpoints/cold-start) "
                           "instead of a cold start; it is the cold start the evaluation compares with")
    _daemon_options(run)
    run.add_argument("--lr-schedule", choices=("constant", "linear", "cosine"), default="constant")
    run.add_argument("--warmup-steps", type=int, default=0)
    run.add_argument("--training-mode", choices=("lora", "full"), help="recr1d's training_mode (default lora)")
    run.add_argument("--lora-rank", type=int, help="recr1d's lora_rank (default 16)")
    run.add_argument("--lora-alpha", type=float, help="recr1d's lora_alpha (default 32)")

    ev = commands.add_parser(
        "eval", help="evaluate on held-out users: no-LLM baseline, base model, trained policy",
        description="Evaluates on the test split: a baseline without a language model, the base model prompted, "
                    "and the trained policy (a checkpoint, or an exported model); prints a table and writes "
                    "eval.json, eval.png and the outputs into --out.")
    ev.add_argument("--run", help="a `recr1 run` folder: its data, task, settings and final checkpoint")
    ev.add_argument("--data", help="a folder from `recr1 data` (with test.jsonl)")
    ev.add_argument("--task", choices=TASKS, help="the data's task (default: from --run or the data)")
    ev.add_argument("--checkpoint", help="the trained policy: a checkpoint folder to load")
    ev.add_argument("--exported", help="the trained policy: a model folder written by Export")
    ev.add_argument("--systems", default=DEFAULT_SYSTEMS,
                    help="which systems, comma-separated (default baseline,base,trained; trained only with a policy)")
    ev.add_argument("--users", type=int, default=0,
                    help="the first N test records (0: all, the default; ≥ 300 for intervals that can tell)")
    ev.add_argument("--cold-start", help="the cold start's policy (SFT only), a checkpoint folder compared too "
                                         "(default: the run's checkpoints/cold-start, when it has one)")
    ev.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples of the intervals (default 2000)")
    ev.add_argument("--reuse", metavar="DIR", help="an earlier eval's --out folder: the records it evaluated for the same "
                                                   "system take its completions; only the others are generated")
    ev.add_argument("--max-new-tokens", type=int, help="most new tokens per answer (default: the run's, else 96)")
    ev.add_argument("--no-stop", action="store_true", default=None,
                    help="do not stop at the answer's closing tag (default: as the run did; else stop)")
    ev.add_argument("--batch", type=int, default=16, help="prompts per Generate call (default 16)")
    ev.add_argument("--out", help="folder for eval.json, eval.png, outputs (default RUN/eval, else ./eval)")
    ev.add_argument("--title", help="the chart's title")
    _daemon_options(ev)

    pr = commands.add_parser(
        "probe", help="general-ability probe: 120 short questions, base model against trained checkpoints",
        description="Asks the fixed general-ability probe (recr1/recipes/probe_questions.jsonl) of the base model "
                    "and of each checkpoint, greedily, and prints accuracy with paired bootstrap intervals "
                    "against the base model (does the training keep general ability?).")
    pr.add_argument("--run", help="a `recr1 run` folder: its model settings, cold-start and final checkpoints")
    pr.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                    help="a checkpoint to probe, under a name (repeatable), e.g. 'SFT 14 steps=runs/sft/checkpoints/final'")
    pr.add_argument("--max-new-tokens", type=int, default=24, help="most new tokens per answer (default 24)")
    pr.add_argument("--batch", type=int, default=40, help="questions per Generate call (default 40)")
    pr.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    pr.add_argument("--out", help="folder for probe.json (default RUN/probe, else ./probe)")
    _daemon_options(pr)
    return run, ev


def _daemon_options(parser):
    group = parser.add_argument_group("recr1d")
    group.add_argument("--address", help="use this running recr1d instead of starting one")
    group.add_argument("--recr1d", help="the recr1d binary (default $RECR1D, recr1d on PATH, or the release build)")
    group.add_argument("--model", help="recr1d's --model (default SmolLM2-135M-Instruct)")
    group.add_argument("--blas-threads", type=int, help="recr1d's OpenBLAS threads (default: one per core)")
    group.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="any other recr1d setting for the started daemon (repeatable), e.g. lora_rank=8")
    group.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for one reply (default 3600)")


def _fractions(text):
    try:
        return check_fractions(float(v) for v in text.split(","))
    except ValueError as exc:
        reason = str(exc).removeprefix("fractions: ")
        raise UsageError(f"--fractions: {reason} (e.g. 0.8,0.1,0.1; got '{text}')") from None


def _settings(args):
    """--set KEY=VALUE, typed and checked against the schema of the recr1d the command will start."""
    if not args.set:
        return {}
    try:
        schema = settings_schema(args.recr1d)
    except DaemonError as exc:
        raise UsageError(f"--set: {exc}") from None
    out = {}
    for text in args.set:
        try:
            key, value = parse_setting(text, schema)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        out[key] = value
    return out


def _check_daemon_args(args):
    if args.blas_threads is not None and args.blas_threads < 0:
        raise UsageError(f"--blas-threads: 0 or more, got {args.blas_threads}")
    if args.timeout <= 0:
        raise UsageError(f"--timeout: a positive number of seconds, got {args.timeout}")
    if args.model and not os.path.exists(args.model):
        raise UsageError(f"--model: no such file or folder {args.model}")


def run_options(args):
    """The resolved options of `recr1 run` (recipe defaults, then the flags), checked."""
    recipe = RECIPES.get(args.recipe)
    if recipe is None:
        raise UsageError(f"recipe: unknown '{args.recipe}' (known: {', '.join(RECIPES)})")
    options = dict(recipe.defaults)
    for name in list(RUN_OPTIONS) + ["kl", "aggregation", "objective", "scaling", "keep_flat_groups",
                                     "cold_start_rounding", "reference"]:
        value = getattr(args, name)
        if value is not None:
            if name not in options:
                raise UsageError(f"{_option(name)}: not an option of {recipe.name}")
            options[name] = value
    for name in POSITIVE:
        if name in options and options[name] < 1:
            raise UsageError(f"{_option(name)}: at least 1, got {options[name]}")
    for name in NON_NEGATIVE:
        if name in options and options[name] < 0:
            raise UsageError(f"{_option(name)}: 0 or more, got {options[name]}")
    for name in POSITIVE_FLOAT:
        if name in options and not options[name] > 0:
            raise UsageError(f"{_option(name)}: a positive number, got {options[name]}")
    if recipe.algorithm == "grpo" and options["group_size"] < 2:
        raise UsageError(f"--group-size: GRPO compares samples of a prompt, so at least 2, got {options['group_size']}")
    if recipe.algorithm == "dpo" and options["samples"] < 2:
        raise UsageError(f"--samples: a DPO pair needs at least 2 texts per user, got {options['samples']}")
    if not 0 < options["top_p"] <= 1:
        raise UsageError(f"--top-p: in (0, 1], got {options['top_p']}")
    if options["cold_start_steps"] and recipe.task == "preference":
        raise UsageError("--cold-start-steps: rlrf4rec has no answer format to start from")
    if args.train_users < 0:
        raise UsageError(f"--train-users: 0 or more, got {args.train_users}")
    if args.warmup_steps < 0:
        raise UsageError(f"--warmup-steps: 0 or more, got {args.warmup_steps}")
    if args.lora_rank is not None and args.lora_rank < 1:
        raise UsageError(f"--lora-rank: at least 1, got {args.lora_rank}")
    _check_daemon_args(args)
    if args.data:
        if not os.path.isdir(args.data):
            raise UsageError(f"--data: no such folder {args.data}")
        if args.esci:
            raise UsageError("--esci: give --data or --esci, not both")
    elif recipe.task == "search":
        if not args.esci:
            raise UsageError("--esci: rec-r1-search needs an ESCI-format file (--esci FILE) or a prompt folder "
                             "(--data DIR from `recr1 data esci`)")
        if not os.path.isfile(args.esci):
            raise UsageError(f"--esci: no such file {args.esci}")
    elif args.esci:
        raise UsageError(f"--esci: only rec-r1-search reads an ESCI file, not {recipe.name}")
    if args.dataset not in movielens.DATASETS:
        raise UsageError(f"--dataset: one of {', '.join(sorted(movielens.DATASETS))}, got '{args.dataset}'")
    if args.from_checkpoint:
        if not os.path.isdir(args.from_checkpoint):
            raise UsageError(f"--from-checkpoint: no such folder {args.from_checkpoint}")
        # The checkpoint replaces the recipe's cold start; an explicit --cold-start-steps continues SFT from
        # it (e.g. an SFT-only comparison of as many steps as the RL).
        if not getattr(args, "cold_start_steps", None):
            options["cold_start_steps"] = 0
    if args.address and args.set:
        raise UsageError("--set: settings go to a recr1d this command starts; with --address the daemon has its own")
    options.update({
        "out": args.out, "data": args.data, "esci": args.esci, "dataset": args.dataset,
        "movielens_path": args.movielens_path, "fractions": _fractions(args.fractions),
        "stop_strings": [] if args.no_stop else list(STOP_STRINGS[recipe.task]),
        "train_users": args.train_users, "split_seed": args.split_seed, "seed": args.seed, "reward": args.reward,
        "from_checkpoint": os.path.abspath(args.from_checkpoint) if args.from_checkpoint else None,
        "address": args.address, "recr1d": args.recr1d, "model": args.model, "blas_threads": args.blas_threads,
        "set": _settings(args),
        "timeout": args.timeout, "lr_schedule": args.lr_schedule, "warmup_steps": args.warmup_steps,
        "training_mode": args.training_mode, "lora_rank": args.lora_rank, "lora_alpha": args.lora_alpha,
    })
    return recipe, options


def _read_run(folder):
    """The run.json of a `recr1 run` folder (None without --run)."""
    if not folder:
        return None
    path = os.path.join(folder, "run.json")
    if not os.path.isfile(path):
        raise UsageError(f"--run: {folder} has no run.json (a folder written by `recr1 run`)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _checkpoint_daemon_settings(trained_with, args):
    """The settings of a recr1d that loads a run's checkpoints: the run's model and adapter settings, then
    the command's own --model, --blas-threads and --set."""
    settings = {key: trained_with[key] for key in ("model", "training_mode", "lora_rank", "lora_alpha")
                if trained_with.get(key) is not None}
    kept = ("model", "training_mode", "lora_rank", "lora_alpha", "lora_targets", "micro_batch_tokens")
    settings.update({k: v for k, v in (trained_with.get("set") or {}).items() if k in kept})
    if args.model:
        settings["model"] = args.model
    if args.blas_threads is not None:
        settings["blas_threads"] = args.blas_threads
    settings.update(_settings(args))
    return settings


def eval_options(args):
    """The resolved options of `recr1 eval`, checked."""
    _check_daemon_args(args)
    run = _read_run(args.run)
    data = args.data or (run or {}).get("data")
    if not data:
        raise UsageError("--data: give the prompt folder (--data DIR) or a run (--run DIR)")
    if not os.path.isdir(data):
        raise UsageError(f"--data: no such folder {data}")
    task = args.task or (run or {}).get("task")
    if task is None:
        task = _task_of(data)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in ("baseline", "base", "trained")]
    if unknown or not systems:
        raise UsageError(f"--systems: a comma-separated subset of baseline, base, trained, got '{args.systems}'")
    checkpoint = args.checkpoint
    if args.checkpoint and args.exported:
        raise UsageError("--checkpoint, --exported: give one trained policy, not both")
    explicit = args.systems != DEFAULT_SYSTEMS
    if checkpoint is None and not args.exported and run is not None:
        checkpoint = run.get("checkpoint")
        if checkpoint is None and "trained" in systems:
            raise UsageError(f"--run: {args.run} has no final checkpoint (status {run.get('status')})")
    if checkpoint and not os.path.isdir(checkpoint):
        raise UsageError(f"--checkpoint: no such folder {checkpoint}")
    if args.exported and not os.path.isdir(args.exported):
        raise UsageError(f"--exported: no such folder {args.exported}")
    if args.exported and args.address:
        raise UsageError("--exported: served by a recr1d this command starts; leave out --address")
    if not (checkpoint or args.exported):
        if "trained" in systems and explicit:
            raise UsageError("--systems: 'trained' needs --checkpoint PATH, --exported DIR or --run DIR")
        systems = [s for s in systems if s != "trained"]
    if args.users < 0:
        raise UsageError(f"--users: 0 (all) or more, got {args.users}")
    if args.batch < 1:
        raise UsageError(f"--batch: at least 1, got {args.batch}")
    trained_with = (run or {}).get("options", {})
    max_new_tokens = args.max_new_tokens if args.max_new_tokens is not None else trained_with.get("max_new_tokens", 96)
    if max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens: at least 1, got {max_new_tokens}")
    settings = _checkpoint_daemon_settings(trained_with, args)
    if args.no_stop:
        stop_strings = []
    elif "stop_strings" in trained_with:
        stop_strings = list(trained_with["stop_strings"])
    else:
        stop_strings = list(STOP_STRINGS[task])
    checkpoint = os.path.abspath(checkpoint) if checkpoint else checkpoint   # recr1d resolves relative paths in its state dir
    out = args.out or (os.path.join(args.run, "eval") if args.run else "eval")
    cold_start = args.cold_start
    if cold_start is None and run is not None and "trained" in systems and not args.exported:
        cold_start = ((run.get("cold_start") or {}).get("checkpoint"))
        if cold_start and not os.path.isdir(cold_start):
            cold_start = None
    if cold_start and not os.path.isdir(cold_start):
        raise UsageError(f"--cold-start: no such folder {cold_start}")
    cold_start = os.path.abspath(cold_start) if cold_start else cold_start
    if args.reuse and not os.path.isfile(os.path.join(args.reuse, "eval.json")):
        raise UsageError(f"--reuse: {args.reuse} has no eval.json (a folder written by `recr1 eval`)")
    if args.resamples < 100:
        raise UsageError(f"--resamples: at least 100, got {args.resamples}")
    return {"run": args.run, "data": data, "task": task, "checkpoint": checkpoint, "exported": args.exported,
            "systems": systems, "users": args.users, "max_new_tokens": max_new_tokens, "stop_strings": stop_strings,
            "batch": args.batch, "out": out, "title": args.title, "address": args.address, "recr1d": args.recr1d,
            "cold_start": cold_start, "resamples": args.resamples, "reuse": args.reuse,
            "daemon_settings": settings, "timeout": args.timeout}


def probe_options(args):
    """The resolved options of `recr1 probe`, checked."""
    _check_daemon_args(args)
    run = _read_run(args.run)
    checkpoints = []
    if run is not None:
        cold = (run.get("cold_start") or {}).get("checkpoint")
        if cold and os.path.isdir(cold):
            checkpoints.append(("cold start (SFT)", cold))
        if run.get("checkpoint"):
            checkpoints.append((f"{run['recipe']} final", run["checkpoint"]))
    for text in args.checkpoint:
        name, sep, path = text.rpartition("=")
        if not sep or not name or not path:
            raise UsageError(f"--checkpoint: NAME=PATH, got '{text}'")
        if not os.path.isdir(path):
            raise UsageError(f"--checkpoint: no such folder {path}")
        checkpoints.append((name, os.path.abspath(path)))   # recr1d resolves a relative path in its state dir
    if args.max_new_tokens < 1 or args.batch < 1:
        raise UsageError("--max-new-tokens, --batch: at least 1")
    if args.resamples < 100:
        raise UsageError(f"--resamples: at least 100, got {args.resamples}")
    settings = _checkpoint_daemon_settings((run or {}).get("options", {}), args)
    out = args.out or (os.path.join(args.run, "probe") if args.run else "probe")
    return {"checkpoints": checkpoints, "max_new_tokens": args.max_new_tokens, "batch": args.batch,
            "resamples": args.resamples, "out": out, "address": args.address, "recr1d": args.recr1d,
            "daemon_settings": settings, "timeout": args.timeout}


def probe_command(args):
    from recr1.recipes import evaluate
    try:
        result = evaluate.run_probe(probe_options(args))
    except UsageError as exc:
        print(f"recr1 probe: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, DaemonError, RecR1Error) as exc:
        print(f"recr1 probe: {exc}", file=sys.stderr)
        return 1
    print(result["table"])
    return 0


def _task_of(data):
    from recr1.data.jsonl import read_jsonl
    path = os.path.join(data, "test.jsonl")
    if not os.path.isfile(path):
        raise UsageError(f"--data: {data} has no test.jsonl")
    for record in read_jsonl(path):
        task = record.get("metadata", {}).get("task")
        if task not in TASKS:
            raise UsageError(f"--task: {path} records name task '{task}'; give --task ({', '.join(TASKS)})")
        return task
    raise UsageError(f"--data: {path} is empty")


def run_command(args):
    from recr1.recipes import tasks, train   # bm25s, numpy, matplotlib: loaded by run and eval only
    try:
        recipe, options = run_options(args)
        summary = train.run(recipe, options)
    except UsageError as exc:
        print(f"recr1 run: {exc}", file=sys.stderr)
        return 2
    except (tasks.DataError, movielens.DataNotFound, FileNotFoundError, ValueError, DaemonError, RecR1Error) as exc:
        print(f"recr1 run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("recr1 run: interrupted", file=sys.stderr)
        return 130
    print(json.dumps({k: summary.get(k) for k in ("recipe", "status", "out", "metrics", "curves", "checkpoint",
                                                   "steps_done", "seconds")}, indent=2))
    return 0


def eval_command(args):
    from recr1.recipes import evaluate, tasks
    try:
        options = eval_options(args)
        result = evaluate.evaluate(options)
    except UsageError as exc:
        print(f"recr1 eval: {exc}", file=sys.stderr)
        return 2
    except (tasks.DataError, FileNotFoundError, ValueError, DaemonError, RecR1Error) as exc:
        print(f"recr1 eval: {exc}", file=sys.stderr)
        return 1
    print(result["table"])
    return 0
