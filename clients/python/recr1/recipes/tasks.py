"""What the recipes and the evaluation need from each task: its prompt files, its reward, how a completion
is judged on held-out users, and the baselines that use no language model.

    seqrec      Rec-R1, MovieLens: history titles -> a BM25 query for the next movie
    search      Rec-R1, an ESCI-format file: the shopper's query -> a rewritten BM25 query
    rating      RecZero / RecOne, MovieLens: think, then <rate>N</rate>
    preference  RLRF4Rec, MovieLens: history titles -> a preference text, used whole as the BM25 query"""

import os
import statistics

from recr1 import metrics
from recr1.data.jsonl import read_jsonl
from recr1.data.split import SPLITS
from recr1.reward import RewardItem
from recr1.rewards import catalogues as catalogues_module
from recr1.rewards import rec_r1, reczero, rlrf4rec
from recr1.rewards.catalogues import Catalogues
from recr1.rewards.formats import parse_rec_r1, parse_reczero

from recr1.recipes import STOP_STRINGS, TASKS  # noqa: F401 (re-exported)

RETRIEVAL = ("seqrec", "search", "preference")
CUTOFFS = (10, 100)


class DataError(ValueError):
    """A prompt folder that cannot serve a task: the message names the option and the file."""


def read_split(data_dir, split, task, option="--data"):
    """The records of data_dir/split.jsonl, checked to be of task."""
    path = os.path.join(data_dir, f"{split}.jsonl")
    if not os.path.isfile(path):
        raise DataError(f"{option}: {data_dir} has no {split}.jsonl (make the folder with `recr1 data ...`)")
    records = list(read_jsonl(path))
    for number, record in enumerate(records, start=1):
        for key in ("id", "messages", "metadata"):
            if key not in record:
                raise DataError(f"{option}: {path}: record {number} has no \"{key}\"")
        found = record["metadata"].get("task")
        if found != task:
            command = "esci FILE" if task == "search" else f"movielens --task {task}"
            raise DataError(f"{option}: {path}: record {number} is of task '{found}', this needs '{task}' "
                            f"(make it with `recr1 data {command} --out DIR`)")
    return records


def catalogue_path(data_dir):
    return os.path.join(data_dir, "catalogue.jsonl")


def catalogues_for(data_dir, records):
    """Catalogues serving the catalogue names the records use, read from data_dir/catalogue.jsonl."""
    names = sorted({r["metadata"].get("catalogue") for r in records if r["metadata"].get("catalogue")})
    path = catalogue_path(data_dir)
    if not names:
        return Catalogues()
    if not os.path.isfile(path):
        raise DataError(f"--data: {data_dir} has no catalogue.jsonl (the retrieval tasks need it)")
    if len(names) > 1:
        raise DataError(f"--data: the records name several catalogues ({', '.join(names)}); one folder, one catalogue")
    return Catalogues({names[0]: path})


def catalogue_records(data_dir):
    """{id: catalogue line} (title, year, genres, description) for the cold-start writers and baselines."""
    path = catalogue_path(data_dir)
    if not os.path.isfile(path):
        return {}
    return {str(r["id"]): r for r in read_jsonl(path)}


def reward_function(task, data_dir, records, k=1000, address=None):
    """The task's reward as a function of RewardItems: in this process, or the plugin at address."""
    if address:
        from recr1.rewards.remote import RewardClient
        return RewardClient(address, timeout=600.0)
    if task == "rating":
        return reczero.RecZeroReward()
    catalogues = catalogues_for(data_dir, records)
    if task == "preference":
        return rlrf4rec.PreferenceReward(catalogues, k)
    return rec_r1.RecR1Reward(catalogues, k)


def reward_items(records, completions):
    """RewardItems of records[i] with each of completions[i] (texts)."""
    return [RewardItem("", text, record["metadata"], record["messages"], f"{record['id']}#{j}")
            for record, texts in zip(records, completions) for j, text in enumerate(texts)]


def format_ok(task, details):
    """Whether a reward's details say the format held (None for a task without a format)."""
    if task == "preference" or details is None or "format" not in details:
        return None
    return details["format"] > 0


# --- Evaluation ------------------------------------------------------------------------------------

class Judge:
    """Judges completions (or no-LLM queries) for held-out records of one task."""

    def __init__(self, task, data_dir, records):
        self.task = task
        self.records = records
        self.catalogues = catalogues_for(data_dir, records) if task in RETRIEVAL else None
        self.catalogue_lines = catalogue_records(data_dir)

    def _retrieval(self, record, query, fmt):
        metadata = record["metadata"]
        index = self.catalogues.for_item(metadata, 0)
        relevant = catalogues_module.targets(metadata, 0, index.catalogue)
        ranks = index.ranks(query, relevant) if query else {key: None for key in relevant}
        out = {"query": query, "format": fmt}
        for k in CUTOFFS:
            out[f"ndcg@{k}"] = metrics.ndcg_from_ranks(ranks, relevant, k)
            out[f"recall@{k}"] = metrics.recall_from_ranks(ranks, relevant, k)
        return out

    def completion(self, record, text):
        """Per-record metrics of one completion."""
        if self.task == "rating":
            parsed = parse_reczero(text)
            truth = float(record["metadata"]["rating"])
            return {"format": parsed.ok, "prediction": parsed.value, "truth": truth,
                    "fallback": float(record["metadata"]["user_mean"])}
        if self.task == "preference":
            return self._retrieval(record, text.strip(), None)
        parsed = parse_rec_r1(text)
        return self._retrieval(record, parsed.value if parsed.ok else None, parsed.ok)

    def baseline_query(self, record, kind="raw"):
        """The no-LLM query: the shopper's own query (search); the history's titles (MovieLens, "raw"), or
        the history's indexed texts: titles, years and genres (MovieLens, "raw-text")."""
        metadata = record["metadata"]
        if self.task == "search":
            return metadata.get("query", "")
        field = "text" if kind == "raw-text" else "title"
        parts = []
        for item in metadata.get("history", []):
            line = self.catalogue_lines.get(str(item), {})
            parts.append(str(line.get(field, "")))
        return " ".join(p for p in parts if p)

    def baseline(self, record, kind):
        from recr1.recipes import coldstart
        if self.task == "rating":
            metadata = record["metadata"]
            user_mean = float(metadata["user_mean"])
            item_mean = metadata.get("item_mean")
            if kind == "rule":
                prediction = float(coldstart.rating_rule(metadata, self.catalogue_lines)[0])
            elif kind == "user-mean" or item_mean is None:
                prediction = user_mean
            else:
                prediction = (user_mean + item_mean) / 2
            return {"format": None, "prediction": prediction, "truth": float(metadata["rating"]),
                    "fallback": user_mean}
        if kind == "rule":
            parsed = parse_rec_r1(coldstart.seqrec_answer(record, self.catalogue_lines))
            return self._retrieval(record, parsed.value, None)
        return self._retrieval(record, self.baseline_query(record, kind), None)

    def baselines(self):
        """(name, kind) of the no-LLM systems of this task."""
        if self.task == "rating":
            return [("user mean (no LLM)", "user-mean"), ("user & item mean (no LLM)", "user-item-mean"),
                    ("cold-start rule (no LLM)", "rule")]
        if self.task == "search":
            return [("BM25, shopper's query (no LLM)", "raw")]
        out = [("BM25, history titles (no LLM)", "raw"), ("BM25, history titles+years+genres (no LLM)", "raw-text")]
        if self.task == "seqrec":
            out.append(("BM25, cold-start rule query (no LLM)", "rule"))
        return out


def summarise(task, rows):
    """Aggregate metrics of per-record rows (from Judge)."""
    n = len(rows)
    out = {"users": n}
    if not n:
        return out
    flags = [r["format"] for r in rows if r.get("format") is not None]
    out["format"] = metrics.format_compliance(flags) if flags else None
    if task == "rating":
        parsed = [r for r in rows if r["prediction"] is not None]
        out["parsed"] = len(parsed) / n
        out["distinct_ratings"] = len({r["prediction"] for r in parsed})
        if parsed:
            out["mae"] = metrics.mae([r["prediction"] for r in parsed], [r["truth"] for r in parsed])
            out["rmse"] = metrics.rmse([r["prediction"] for r in parsed], [r["truth"] for r in parsed])
        else:
            out["mae"] = out["rmse"] = None
        predictions = [r["prediction"] if r["prediction"] is not None else r["fallback"] for r in rows]
        truths = [r["truth"] for r in rows]
        out["mae_all"] = metrics.mae(predictions, truths)
        out["rmse_all"] = metrics.rmse(predictions, truths)
        return out
    for key in rows[0]:
        if key.startswith(("ndcg@", "recall@")):
            out[key] = statistics.fmean(r[key] for r in rows)
    out["answered"] = sum(1 for r in rows if r.get("query")) / n
    return out


def main_metrics(task):
    """(key, label, higher is better) of the metrics the table and the chart show."""
    if task == "rating":
        return [("mae", "MAE (parsed)", False), ("rmse", "RMSE (parsed)", False), ("mae_all", "MAE (all)", False),
                ("rmse_all", "RMSE (all)", False), ("parsed", "rated", True), ("format", "format", True),
                ("distinct_ratings", "distinct ratings", True)]
    keys = [("ndcg@10", "NDCG@10", True), ("recall@10", "Recall@10", True), ("ndcg@100", "NDCG@100", True),
            ("recall@100", "Recall@100", True)]
    if task != "preference":
        keys.append(("format", "format", True))
    return keys


def headline_metric(task):
    """(key, label, higher is better) of the one metric a task is judged by: validation curves, comparisons."""
    return ("mae_all", "MAE (all)", False) if task == "rating" else ("ndcg@10", "NDCG@10", True)


def splits_present(data_dir):
    return [s for s in SPLITS if os.path.isfile(os.path.join(data_dir, f"{s}.jsonl"))]
