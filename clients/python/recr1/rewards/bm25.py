"""A fixed BM25 retriever over a catalogue (bm25s; Lucene's BM25 with k1 1.2, b 0.75), and the rank of the
relevant items for a query.

Tokens: lower case, words of two or more letters or digits, English stop words removed, no stemming
(the same on every machine: no optional stemmer is picked up). A document with score 0 (no query word in
it) is not retrieved. Ties: a relevant document is ranked after every irrelevant document with the same
score, and after the relevant ones earlier in the catalogue, so a vague query cannot earn NDCG by ties."""

import threading

from recr1 import extras, metrics

extras.require("the BM25 rewards", ("numpy", "bm25s"))

import bm25s  # noqa: E402  (after the check that names the missing package)
import numpy as np  # noqa: E402

K1 = 1.2
B = 0.75
STOPWORDS = "en"


def tokenize(texts):
    """Lists of tokens, the way the index sees them."""
    return bm25s.tokenize(list(texts), lower=True, stopwords=STOPWORDS, return_ids=False, show_progress=False)


class BM25Index:
    """BM25 over a Catalogue's texts. Thread-safe for queries."""

    def __init__(self, catalogue, k1=K1, b=B):
        self.catalogue = catalogue
        self.k1, self.b = k1, b
        self._retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        self._retriever.index(tokenize(catalogue.texts), show_progress=False)

    def scores(self, query):
        """The BM25 score of every document, in catalogue order (float32 array)."""
        ids = self._retriever.get_tokens_ids(tokenize([query])[0])
        if not ids:
            return np.zeros(len(self.catalogue), dtype=np.float32)
        return np.asarray(self._retriever.get_scores_from_ids(ids), dtype=np.float32)

    def search(self, query, k=10):
        """[(id, score), ...]: the k best documents with a positive score, ties in catalogue order."""
        scores = self.scores(query)
        order = np.lexsort((np.arange(len(scores)), -scores))
        return [(self.catalogue.ids[i], float(scores[i])) for i in order[:k] if scores[i] > 0]

    def ranks(self, query, relevant):
        """{id: 1-based rank, or None when not retrieved} of the relevant ids (see the tie rule above)."""
        scores = self.scores(query)
        positions = {doc_id: self.catalogue.index_of[doc_id] for doc_id in relevant}
        relevant_scores = {doc_id: scores[p] for doc_id, p in positions.items()}
        out = {}
        for doc_id, position in positions.items():
            score = relevant_scores[doc_id]
            if score <= 0:
                out[doc_id] = None
                continue
            higher = int(np.count_nonzero(scores > score))
            tied = int(np.count_nonzero(scores == score))
            tied_relevant = [other for other, s in relevant_scores.items() if s == score]
            tied_relevant_before = sum(1 for other in tied_relevant if positions[other] < position)
            out[doc_id] = 1 + higher + (tied - len(tied_relevant)) + tied_relevant_before
        return out

    def ndcg(self, query, relevant, k):
        """NDCG@k of the relevant items ({id: gain} or ids) when query is the BM25 query."""
        return metrics.ndcg_from_ranks(self.ranks(query, relevant), relevant, k)


_cache = {}
_cache_lock = threading.Lock()


def cached_index(key, make_catalogue):
    """The BM25Index of a catalogue, built once per key: make_catalogue() is called the first time only."""
    with _cache_lock:
        index = _cache.get(key)
        if index is None:
            index = BM25Index(make_catalogue())
            _cache[key] = index
        return index
