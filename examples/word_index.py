"""A realistic job: index the words of a generated corpus, then keep only the frequent ones.

Run: python -m memory_profilerxx word_index.py [documents]
"""

import random
import sys
from collections import Counter, defaultdict

try:
    profile  # noqa: B018
except NameError:
    from memory_profilerxx import profile


def make_corpus(documents, words_per_doc=200, seed=7):
    rng = random.Random(seed)
    vocabulary = [f"w{i:05d}" for i in range(20_000)]
    return [" ".join(rng.choices(vocabulary, k=words_per_doc)) for _ in range(documents)]


@profile
def build_index(corpus):
    index = defaultdict(set)
    counts = Counter()
    for doc_id, text in enumerate(corpus):
        words = text.split()
        counts.update(words)
        for word in words:
            index[word].add(doc_id)
    frequent = {w for w, n in counts.items() if n >= 50}
    pruned = {w: sorted(ids) for w, ids in index.items() if w in frequent}
    del index
    return pruned


if __name__ == "__main__":
    documents = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000
    corpus = make_corpus(documents)
    index = build_index(corpus)
    print(f"{len(corpus)} documents, {len(index)} frequent words indexed")
