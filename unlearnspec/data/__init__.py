"""Loading evaluation and training data (MUSE layout, local files, the hub)."""
from .muse import Corpus

__all__ = ["Corpus"]
