"""The prompts of the three methods, as chat messages (one user message; recr1d applies the chat template).

- Rec-R1, sequential recommendation: the last titles a user watched -> a BM25 search query, answered as
  <think>…</think><answer>{"query": "…"}</answer>.
- Rec-R1, product search: a shopper's query -> a rewritten BM25 query, in the same answer format.
- RecZero: the user's rated history, the user's mean rating, the target item and its mean rating ->
  <analyze user>…</analyze user><analyze item>…</analyze item><match>…</match><rate>N</rate>.
- RLRF4Rec: the last titles a user watched -> a free-text description of the user's preferences."""

REC_R1_ANSWER = (
    "First think it through inside <think> </think>. Then give the query as JSON inside <answer> </answer>, "
    "and write nothing after it:\n"
    "<think> your reasoning </think>\n"
    "<answer>{\"query\": \"your search terms\"}</answer>")

RECZERO_ANSWER = (
    "Answer in four parts, in this order, each tag exactly once:\n"
    "<analyze user> what this user likes and how they rate </analyze user>\n"
    "<analyze item> what this movie is and how others rated it </analyze item>\n"
    "<match> how well the movie fits the user </match>\n"
    "<rate> your predicted rating, a whole number from 1 to 5 </rate>")


def _item_line(index, item, rating=None):
    genres = ", ".join(item.genres)
    line = f"{index}. {item.label}" + (f" - {genres}" if genres else "")
    if rating is not None:
        line += f": rated {_number(rating)}"
    return line


def _number(value):
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.2f}"


def _user(content):
    return [{"role": "user", "content": content}]


def seqrec_messages(history):
    """Rec-R1 sequential recommendation. history: Items, oldest first (the caller keeps the last 10)."""
    lines = "\n".join(_item_line(i, item) for i, item in enumerate(history, start=1))
    return _user(
        f"Here are the last {len(history)} movies a user watched, oldest first (title, year, genres):\n"
        f"{lines}\n\n"
        "Write a search query that will find the movie this user will watch next. A keyword search engine "
        "(BM25) runs your query over a catalogue of movie titles, release years and genres, so use words that "
        "appear in titles and genres.\n"
        f"{REC_R1_ANSWER}")


def search_messages(query):
    """Rec-R1 product search: rewrite a shopper's query for BM25 over product titles and descriptions."""
    return _user(
        f"A shopper typed this query into an online store's search box: \"{query}\"\n\n"
        "Rewrite it into a search query that finds the products this shopper wants. A keyword search engine "
        "(BM25) runs your query over product titles and descriptions, so use the words such products would "
        "be described with.\n"
        f"{REC_R1_ANSWER}")


def rating_messages(history, user_mean, user_count, target, item_mean, item_count):
    """RecZero rating prediction. history: (Item, rating) pairs, oldest first (at most 10)."""
    lines = "\n".join(_item_line(i, item, rating) for i, (item, rating) in enumerate(history, start=1))
    genres = ", ".join(target.genres)
    item_line = f"{target.label}" + (f" - {genres}" if genres else "")
    if item_count:
        item_stats = f"Its mean rating so far: {item_mean:.2f} out of 5 (from {item_count} ratings)."
    else:
        item_stats = "Nobody has rated it yet."
    return _user(
        "Predict how a user will rate a movie, on a scale from 1 (hated it) to 5 (loved it).\n\n"
        f"The user's last {len(history)} ratings, oldest first:\n{lines}\n"
        f"The user's mean rating: {user_mean:.2f} out of 5 (from {user_count} ratings).\n\n"
        f"The movie to rate: {item_line}\n{item_stats}\n\n"
        f"{RECZERO_ANSWER}")


def preference_messages(history):
    """RLRF4Rec: a description of the user's preferences, which a recommender then uses as its query."""
    lines = "\n".join(_item_line(i, item) for i, item in enumerate(history, start=1))
    return _user(
        f"Here are the last {len(history)} movies a user watched, oldest first (title, year, genres):\n"
        f"{lines}\n\n"
        "Describe this user's movie preferences in two or three sentences: the genres, eras, themes and kinds "
        "of movie they enjoy, and what they would like to watch next. A recommender will search a catalogue "
        "of movie titles, release years and genres with your description, so be specific.")
