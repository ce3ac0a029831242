"""matplotlib for writing figures to files: the Agg backend (no display needed), imported on demand."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (call it inside the functions that plot, so that
    importing a report module does not import matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
