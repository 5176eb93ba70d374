"""Matplotlib figures, written atomically as PNG. Agg backend: no display needed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecnn.files import atomic_path

__all__ = ["plot_curves", "plot_confusion", "plot_latency"]


def _pyplot():  # -> matplotlib.pyplot, imported only by those who draw
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(epochs: Sequence[dict[str, Any]], path: str | os.PathLike[str], *, title: str = "") -> None:
    """Loss and accuracy per epoch, train vs validation, side by side (as in the tutorials' plots; the test
    set is measured once, after training, so it has no curve)."""
    plt = _pyplot()
    xs = [e["epoch"] for e in epochs]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
        ax.plot(xs, [e[f"train_{key}"] for e in epochs], "o-", label="train")
        if all(f"val_{key}" in e for e in epochs):
            ax.plot(xs, [e[f"val_{key}"] for e in epochs], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if len(xs) <= 20:
            ax.set_xticks(xs)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_loss.set_title("loss")
    ax_acc.set_title("accuracy")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path, plt)


def plot_confusion(
    matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: str | os.PathLike[str], *, title: str = ""
) -> None:
    """Test-set confusion matrix: rows are true classes, columns predictions, counts in the cells."""
    plt = _pyplot()
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.55 * n))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    peak = max(max(row) for row in matrix) or 1
    for i in range(n):
        for j in range(n):
            value = matrix[i][j]
            ax.text(
                j, i, str(value), ha="center", va="center", fontsize=7, color="white" if value > peak / 2 else "black"
            )
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix (test set)")
    fig.tight_layout()
    _save(fig, path, plt)


def _save(fig, path: str | os.PathLike[str], plt) -> None:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)


def plot_latency(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """p50 per model and batch size as a point, with a whisker from the fastest run to p99, on a log axis
    (one panel per batch size: their scales differ by orders of magnitude). Points, not bars: on a log axis
    a bar's length means nothing, while the distance between two points is their ratio; each point is also
    labelled with its p50 and that as a multiple of the first model's (the dashed line)."""
    plt = _pyplot()
    batches = list(result["batches"])
    names = [m["name"] for m in result["models"]]
    fig, axes = plt.subplots(1, len(batches), figsize=(3.2 + 2.6 * len(batches), 3.8), squeeze=False)
    for ax, batch in zip(axes[0], batches, strict=True):
        rows = [result["batches"][batch][name] for name in names]
        for x, row in enumerate(rows):
            spread = [[row["p50"] - row["min"]], [row["p99"] - row["p50"]]]
            ax.errorbar([x], [row["p50"]], yerr=spread, fmt="o", color=f"C{x}", capsize=4, linewidth=1.5)
            label = f"{row['p50']:.3g} ms\n×{row['ratio_p50']:.2f}"
            ax.annotate(label, (x, row["p50"]), xytext=(7, 0), textcoords="offset points", va="center", fontsize=8)
        ax.axhline(rows[0]["p50"], color="grey", linestyle="--", linewidth=0.8)
        ax.set_xticks(
            range(len(names)),
            [Path(n).name if "(" not in n else "torch eager" for n in names],
            rotation=30,
            ha="right",
            fontsize=8,
        )
        ax.set_xlim(-0.5, len(names) - 0.2)
        ax.set_title(f"batch {batch}")
        ax.set_yscale("log")  # equal ratios, equal distances; a few slow outliers do not flatten the rest
        ax.yaxis.set_major_formatter("{x:g}")  # 0.3, not 3×10⁻¹
        ax.yaxis.set_minor_formatter(_twos_and_fives)
        ax.set_ylabel("ms, log scale (point p50, whisker min–p99)")
        ax.grid(axis="y", which="both", alpha=0.3)
    env = result["environment"]
    fig.suptitle(f"edgecnn bench — {env['cpu']}, {env['cores']} cores, onnxruntime {env['onnxruntime']}", fontsize=9)
    fig.tight_layout()
    _save(fig, path, plt)


def _twos_and_fives(value: float, _position: int) -> str:
    """A log axis's minor ticks labelled at 2 and 5 of each decade only: enough to read, never crowded."""
    return f"{value:g}" if f"{value:.0e}"[0] in "25" else ""
