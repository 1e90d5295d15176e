"""Loading evaluation and training data (MUSE layout, local files, the hub)."""
from .files import read_records, read_texts
from .hub_datasets import corpus_from_hub, corpus_from_snapshot, load_corpus
from .muse import Corpus

__all__ = ["Corpus", "corpus_from_hub", "corpus_from_snapshot", "load_corpus", "read_records",
           "read_texts"]
