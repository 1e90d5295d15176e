"""unlearnspec: declarative tests for claims about unlearned language models.

Importing the package is cheap: no torch, no transformers. Heavy modules are imported
by the engine when a run actually computes something.
"""
from __future__ import annotations

__version__ = "0.1.0"
