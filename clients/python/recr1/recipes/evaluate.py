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
from recr1.data.jsonl import write_jsonl
from recr1.recipes import plots, tasks
from recr1.recipes.daemon import LocalDaemon
from recr1.recipes.progress import duration

ADAPTER_KEYS = ("training_mode", "lora_rank", "lora_alpha", "lora_targets")   # a checkpoint needs the same


def _generate_all(client, records, max_new_tokens, stop_strings, batch, label, note):
    texts, started = [], time.monotonic()
    for start in range(0, len(records), batch):
        part = records[start:start + batch]
        reply = client.generate([r["messages"] for r in part], n=1, temperature=0.0,
                                max_new_tokens=max_new_tokens, stop_strings=stop_strings, store=False)
        texts.extend(result.completions[0].text for result in reply.results)
        done = len(texts)
        elapsed = time.monotonic() - started
        note(f"eval {label}: {done}/{len(records)} users, {duration(elapsed)}, "
             f"ETA {duration(elapsed / done * (len(records) - done))}")
    return texts, time.monotonic() - started


def _model_rows(judge, records, texts):
    rows = []
    for record, text in zip(records, texts):
        row = judge.completion(record, text)
        rows.append({"id": record["id"], "completion": text, **row})
    return rows


def format_table(task, systems):
    """The results as a fixed-width text table."""
    columns = tasks.main_metrics(task)
    name_width = max(len("system"), *(len(s["name"]) for s in systems))
    header = f"{'system':<{name_width}}  " + "  ".join(f"{label:>13}" for _, label, _ in columns)
    lines = [header, "-" * len(header)]
    for system in systems:
        cells = []
        for key, _, _ in columns:
            value = system["metrics"].get(key)
            cells.append(f"{'n/a' if value is None else f'{value:.4f}':>13}")
        lines.append(f"{system['name']:<{name_width}}  " + "  ".join(cells))
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
    note(f"{len(records)} held-out users of {data_dir} (task {task}); systems: {', '.join(wanted)}")

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
            daemon = LocalDaemon(folder, settings, binary=options.get("recr1d"), log=note).start()
            client = daemon.client(timeout=options["timeout"])

        for kind in model_systems:
            if kind == "base":
                connect()
                version = client.health().policy_version
                if version != 0:
                    raise ValueError(f"--address: recr1d serves policy version {version}, not the base model; "
                                     "evaluate the base model on a fresh recr1d (leave out --address)")
                name = "base model (prompted)"
            elif options.get("exported"):
                connect(model=options["exported"])
                name = f"trained ({os.path.basename(os.path.normpath(options['exported']))}, exported)"
            else:
                if client is None:
                    connect()
                loaded = client.load_checkpoint(options["checkpoint"])
                name = f"trained (step {loaded.step}, policy v{loaded.policy_version})"
            texts, seconds = _generate_all(client, records, options["max_new_tokens"], options["stop_strings"],
                                           options["batch"], kind, note)
            rows = _model_rows(judge, records, texts)
            systems.append({"name": name, "kind": kind, "metrics": tasks.summarise(task, rows), "seconds": seconds,
                            "rows": rows})
    finally:
        if client is not None:
            client.close()
        if daemon is not None:
            daemon.stop()

    for index, system in enumerate(systems):
        write_jsonl(out / f"outputs-{index + 1}-{system['kind']}.jsonl", system.pop("rows"))
    result = {"task": task, "data": os.path.abspath(data_dir), "users": len(records),
              "max_new_tokens": options["max_new_tokens"], "stop_strings": options["stop_strings"],
              "decoding": "greedy",
              "checkpoint": options.get("checkpoint"), "exported": options.get("exported"),
              "run": options.get("run"), "systems": systems}
    result = _json_safe(result)
    with open(out / "eval.json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    title = options.get("title") or f"{task}: {len(records)} held-out users"
    plots.evaluation_bars(systems, tasks.main_metrics(task), str(out / "eval.png"), title)
    result["table"] = format_table(task, systems)
    note(f"wrote {out / 'eval.json'} and {out / 'eval.png'}")
    return result
