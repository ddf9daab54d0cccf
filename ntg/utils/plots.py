"""matplotlib for files, not screens: the Agg backend and an atomic PNG write, shared by every figure ntg makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ntg.utils.io import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed; imported only when a figure is made)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: str | Path, **savefig: Any) -> Path:
    """Write ``fig`` to ``path`` as a PNG in one rename (a crash never leaves half a file) and close it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", **savefig)
    pyplot().close(fig)
    return path
