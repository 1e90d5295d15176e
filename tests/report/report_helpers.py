"""Helpers the report tests import by name (importing `conftest` by name gets whichever
conftest.py was loaded last under that name)."""
from __future__ import annotations

from typing import Any


def coverage(source: str, share: float = 1.0) -> dict[str, Any]:
    """A transformed measurement's coverage as the engine records it (rtn on a tiny Llama)."""
    att, mlp = 24_576, 49_152
    changed = round(share * (att + mlp))
    return {"source": source,
            "decoder": {"weights": att + mlp, "selected": changed, "changed": changed,
                        "on_grid": 0, "share": changed / (att + mlp)},
            "roles": {"attention": {"weights": att, "selected": min(att, changed),
                                    "changed": min(att, changed), "on_grid": 0},
                      "mlp": {"weights": mlp, "selected": max(0, changed - att),
                              "changed": max(0, changed - att), "on_grid": 0},
                      "head": {"weights": 6_144, "selected": 0, "changed": 0, "on_grid": 0}},
            "untouched": [] if share == 1.0 else ["model.layers.*.mlp.up_proj.weight (Linear): "
                                                  "not selected"]}
