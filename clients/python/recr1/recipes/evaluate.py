"""`recr1 eval`: held-out users (the test split) under three kinds of system:

    baseline   no language model: BM25 with the user's history titles as the query, and with their titles,
               years and genres (MovieLens retrieval tasks); BM25 with the shopper's own query (product
               search); the user's mean rating and the mean of the user's and the item's mean ratings
               (rating); and the rule that writes the cold-start answers (rating, seqrec)
    base       the base model, prompted (greedy decoding)
    trained    the trained policy: a checkpoint loaded into recr1d (load_checkpoint), or an exported model

Metrics: NDCG@10, Recall@10, NDCG@100, Recall@100 and format compliance (retrieval tasks; a completion
whose format does not hold retrieves nothing); MAE and RMSE over the ratings that parsed, the share that
parsed, MAE and RMSE over all users with the user's mean rating standing in for an unparsed answer, and
format compliance (rating). Written as OUT/eval.json, OUT/eval.png and OUT/outputs-<system>.jsonl."""

import json
import math
import os
import pathlib
import sys
import time

from recr1.client import PolicyClient
from recr1.data.jsonl import read_jsonl, write_jsonl
from recr1.recipes import plots, stats, tasks
from recr1.recipes.daemon import LocalDaemon, folders_of
from recr1.recipes.progress import duration

ADAPTER_KEYS = ("training_mode", "lora_rank", "lora_alpha", "lora_targets")   # a checkpoint needs the same


def greedy_texts(client, records, max_new_tokens, stop_strings, batch, label=None, note=None):
    """The greedy answer to each record's prompt, batch prompts per Generate call; (texts, seconds)."""
    texts, started = [], time.monotonic()
    for start in range(0, len(records), batch):
        part = records[start:start + batch]
        reply = client.generate([r["messages"] for r in part], n=1, temperature=0.0,
                                max_new_tokens=max_new_tokens, stop_strings=stop_strings, store=False)
        texts.extend(result.completions[0].text for result in reply.results)
        done = len(texts)
        elapsed = time.monotonic() - started
        if note:
            note(f"eval {label}: {done}/{len(records)} prompts, {duration(elapsed)}, "
                 f"ETA {duration(elapsed / done * (len(records) - done))}")
    return texts, time.monotonic() - started


def policy_source(kind, path=None, model=None):
    """What a model system's answers come from, for --reuse to match on: the base model's file, or the
    checkpoint's (or exported model's) folder and when it was saved. Two runs' checkpoints can share a
    name ("trained (step 84, policy v84)"); they do not share a folder and a save time."""
    if kind == "base":
        return {"model": model or "default"}
    path = os.path.realpath(path)
    saved = None
    trainer = os.path.join(path, "trainer.json")
    if os.path.isfile(trainer):
        with open(trainer, encoding="utf-8") as f:
            saved = json.load(f).get("savedAt")
    return {"path": path, "saved_at": saved}


def _reused_texts(folder, name, kind, source, records, note):
    """The completions an earlier `recr1 eval` (its --out folder) wrote for the same system (name, kind and,
    for a model, the same policy: `policy_source`), as {record id: completion} for those of `records` it
    evaluated (greedy decoding gives them again, so they need not be generated twice), or {} when it has none."""
    if not folder:
        return {}
    path = os.path.join(folder, "eval.json")
    if not os.path.isfile(path):
        raise ValueError(f"--reuse: {folder} has no eval.json (a folder written by `recr1 eval`)")
    with open(path, encoding="utf-8") as f:
        previous = json.load(f)
    for index, system in enumerate(previous.get("systems", [])):
        if system.get("name") == name and system.get("kind") == kind and system.get("source") == source:
            done = {row["id"]: row["completion"]
                    for row in read_jsonl(os.path.join(folder, f"outputs-{index + 1}-{kind}.jsonl"))}
            wanted = {r["id"] for r in records}
            found = {key: text for key, text in done.items() if key in wanted}
            note(f"{name}: {len(found)} of {len(records)} completions from {folder} (greedy), "
                 f"{len(records) - len(found)} to generate")
            return found
    return {}


def judge_texts(judge, records, texts):
    """Per-record rows (id, completion and the task's metrics) of the completions texts[i] of records[i]."""
    return [{"id": record["id"], "completion": text, **judge.completion(record, text)}
            for record, text in zip(records, texts)]


def format_table(task, systems):
    """The results as a fixed-width text table, with the 95% interval of the headline metric's mean."""
    columns = tasks.main_metrics(task)
    headline = tasks.headline_metric(task)[1]
    name_width = max(len("system"), *(len(s["name"]) for s in systems))
    header = (f"{'system':<{name_width}}  " + "  ".join(f"{label:>13}" for _, label, _ in columns)
              + f"  {headline + ' 95% CI':>22}")
    lines = [header, "-" * len(header)]
    for system in systems:
        cells = []
        for key, _, _ in columns:
            value = system["metrics"].get(key)
            text = "n/a" if value is None else (str(value) if isinstance(value, int) else f"{value:.4f}")
            cells.append(f"{text:>13}")
        interval = system.get("interval")
        ci = f"[{interval['low']:.4f}, {interval['high']:.4f}]" if interval else ""
        lines.append(f"{system['name']:<{name_width}}  " + "  ".join(cells) + f"  {ci:>22}")
    return "\n".join(lines)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def evaluate(options, stream=None):
    """Runs the evaluation described by options (see cli.eval_options); returns the result dict."""
    stream = stream or sys.stderr

    def note(message):
        print(f"[eval] {message}", file=stream, flush=True)

    out = pathlib.Path(options["out"]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    task, data_dir = options["task"], options["data"]
    records = tasks.read_split(data_dir, "test", task)
    if options["users"]:
        records = records[:options["users"]]
    if not records:
        raise tasks.DataError(f"--data: {data_dir}/test.jsonl has no prompts to evaluate")
    judge = tasks.Judge(task, data_dir, records)
    wanted = options["systems"]
    systems = []
    held_out = f"{len(records)} held-out targets of {len({stats.user_of(r['id']) for r in records})} users"
    note(f"{held_out} of {data_dir} (task {task}); systems: {', '.join(wanted)}")

    if "baseline" in wanted:
        for name, kind in judge.baselines():
            started = time.monotonic()
            rows = [{"id": r["id"], **judge.baseline(r, kind)} for r in records]
            systems.append({"name": name, "kind": "baseline", "metrics": tasks.summarise(task, rows),
                            "seconds": time.monotonic() - started, "rows": rows})

    model_systems = [s for s in ("base", "trained") if s in wanted]
    if "trained" in model_systems and not (options.get("checkpoint") or options.get("exported")):
        raise ValueError("--systems: 'trained' needs --checkpoint PATH, --exported DIR or --run DIR")
    daemon = None
    client = None
    try:
        def connect(model=None):
            nonlocal daemon, client
            if client is not None:
                client.close()
            if daemon is not None:
                daemon.stop()
                daemon = None
            if options.get("address"):
                client = PolicyClient(options["address"], timeout=options["timeout"])
                return
            settings = dict(options["daemon_settings"])
            if model:
                settings["model"] = model
                for key in ADAPTER_KEYS:
                    settings.pop(key, None)   # an exported model is served as it is
            folder = out / ("recr1d-exported" if model else "recr1d")
            daemon = LocalDaemon(folder, settings, binary=options.get("recr1d"), log=note,
                                 allowed_dirs=folders_of(options.get("cold_start"), options.get("checkpoint"))).start()
            client = daemon.client(timeout=options["timeout"])

        if options.get("cold_start") and "trained" in model_systems:
            model_systems.insert(model_systems.index("trained"), "cold-start")
        for kind in model_systems:
            if kind == "cold-start":
                if client is None:
                    connect()
                loaded = client.load_checkpoint(options["cold_start"])
                name = f"cold start, SFT only (step {loaded.step})"
                source = policy_source(kind, options["cold_start"])
            elif kind == "base":
                connect()
                version = client.health().policy_version
                if version != 0:
                    raise ValueError(f"--address: recr1d serves policy version {version}, not the base model; "
                                     "evaluate the base model on a fresh recr1d (leave out --address)")
                name = "base model (prompted)"
                source = policy_source(kind, model=options.get("daemon_settings", {}).get("model"))
            elif options.get("exported"):
                connect(model=options["exported"])
                name = f"trained ({os.path.basename(os.path.normpath(options['exported']))}, exported)"
                source = policy_source(kind, options["exported"])
            else:
                if client is None:
                    connect()
                loaded = client.load_checkpoint(options["checkpoint"])
                name = f"trained (step {loaded.step}, policy v{loaded.policy_version})"
                source = policy_source(kind, options["checkpoint"])
            reused = _reused_texts(options.get("reuse"), name, kind, source, records, note)
            missing = [r for r in records if r["id"] not in reused]
            new, seconds = greedy_texts(client, missing, options["max_new_tokens"], options["stop_strings"],
                                        options["batch"], kind, note) if missing else ([], 0.0)
            generated = dict(zip((r["id"] for r in missing), new))
            texts = [reused.get(r["id"], generated.get(r["id"])) for r in records]
            rows = judge_texts(judge, records, texts)
            systems.append({"name": name, "kind": kind, "source": source, "metrics": tasks.summarise(task, rows), "seconds": seconds,
                            "rows": rows})
    finally:
        if client is not None:
            client.close()
        if daemon is not None:
            daemon.stop()

    key, label, higher = tasks.headline_metric(task)
    subject = max((i for i, s in enumerate(systems) if s["kind"] != "baseline"), default=len(systems) - 1)
    comparisons = stats.compare(task, systems, key, higher, subject=subject, resamples=options.get("resamples", 2000))
    for system in systems:
        values = [stats.record_value(task, row, key) for row in system["rows"]]
        clusters = [stats.user_of(row["id"]) for row in system["rows"]]
        mean, low, high = stats.mean_interval(values, clusters, resamples=options.get("resamples", 2000))
        system["interval"] = {"metric": key, "mean": mean, "low": low, "high": high}
    for index, system in enumerate(systems):
        write_jsonl(out / f"outputs-{index + 1}-{system['kind']}.jsonl", system.pop("rows"))
    result = {"task": task, "data": os.path.abspath(data_dir), "users": len(records),
              "max_new_tokens": options["max_new_tokens"], "stop_strings": options["stop_strings"],
              "decoding": "greedy",
              "checkpoint": options.get("checkpoint"), "exported": options.get("exported"),
              "run": options.get("run"), "cold_start": options.get("cold_start"),
              "users_distinct": len({stats.user_of(r["id"]) for r in records}),
              "headline": {"metric": key, "label": label, "higher_is_better": higher},
              "systems": systems, "comparisons": comparisons}
    result = _json_safe(result)
    with open(out / "eval.json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    title = options.get("title") or f"{task}: {held_out}"
    plots.evaluation_bars(systems, tasks.main_metrics(task), str(out / "eval.png"), title, comparisons=comparisons)
    result["table"] = format_table(task, systems) + "\n\n" + stats.format_comparisons(comparisons, label)
    note(f"wrote {out / 'eval.json'} and {out / 'eval.png'}")
    return result


def run_probe(options, stream=None):
    """`recr1 probe`: the general-ability probe (recr1.recipes.probe) for the base model and each checkpoint
    of options["checkpoints"] ([(name, path)]), greedy; accuracy per system and category, and each
    checkpoint's paired bootstrap interval against the base model (questions resampled). Writes
    OUT/probe.json and returns the result with a text table."""
    from recr1.recipes import probe
    stream = stream or sys.stderr

    def note(message):
        print(f"[probe] {message}", file=stream, flush=True)

    out = pathlib.Path(options["out"]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    questions = probe.load_questions()
    records = [{"id": q["id"], "messages": probe.messages(q)} for q in questions]
    systems = []
    if options.get("address"):
        client, daemon = PolicyClient(options["address"], timeout=options["timeout"]), None
    else:
        daemon = LocalDaemon(out / "recr1d", dict(options["daemon_settings"]), binary=options.get("recr1d"),
                             log=note, allowed_dirs=folders_of(*(path for _, path in options["checkpoints"]))).start()
        client = daemon.client(timeout=options["timeout"])
    try:
        if client.health().policy_version != 0:
            raise ValueError("--address: recr1d does not serve the base model; leave out --address")
        for name, path in [("base model", None)] + list(options["checkpoints"]):
            if path:
                loaded = client.load_checkpoint(path)
                name = f"{name} (step {loaded.step})"
            texts, seconds = greedy_texts(client, records, options["max_new_tokens"], [], options["batch"], name, note)
            report = probe.score(questions, texts)
            systems.append({"name": name, "checkpoint": path, "accuracy": report["accuracy"],
                            "correct": report["correct"], "questions": report["questions"],
                            "by_category": report["by_category"], "seconds": seconds, "rows": report["rows"]})
            note(f"{name}: {report['correct']}/{report['questions']} correct ({report['accuracy']:.1%})")
    finally:
        client.close()
        if daemon is not None:
            daemon.stop()
    comparisons = []
    ids = [row["id"] for row in systems[0]["rows"]]
    base = [float(row["correct"]) for row in systems[0]["rows"]]
    for system in systems[1:]:
        mine = [float(row["correct"]) for row in system["rows"]]
        interval = stats.paired_bootstrap(mine, base, ids, resamples=options.get("resamples", 2000))
        comparisons.append({"system": system["name"], "against": systems[0]["name"], "metric": "accuracy",
                            **interval, "verdict": stats.verdict(interval, True)})
    for index, system in enumerate(systems):
        write_jsonl(out / f"probe-{index + 1}.jsonl", system.pop("rows"))
    result = _json_safe({"questions": len(questions), "max_new_tokens": options["max_new_tokens"],
                         "decoding": "greedy", "systems": systems, "comparisons": comparisons})
    with open(out / "probe.json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    width = max(len(s["name"]) for s in systems)
    lines = [f"{'system':<{width}}  accuracy  correct"]
    lines += [f"{s['name']:<{width}}  {s['accuracy']:8.3f}  {s['correct']:>3}/{s['questions']}" for s in systems]
    if comparisons:
        lines += ["", stats.format_comparisons(comparisons, "probe accuracy").replace("users", "questions")]
    result["table"] = "\n".join(lines)
    note(f"wrote {out / 'probe.json'}")
    return result
