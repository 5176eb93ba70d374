"""Write the tuning probes (edgecnn/runtime/probes/DATASET.npz): real test images, 100 of each class, the first
of each class in the test split's order, with their labels, for ``edgecnn tune`` and ``backend="auto"`` to
gate configurations on a device that has no dataset.

    .venv/bin/python tools/make_probes.py            # reads EDGECNN_DATA (or ../shared/datasets)

Deterministic: the same dataset gives the same bytes, so a re-run changes nothing in git.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np

from edgecnn.data.builtin import BUILTIN_DATASETS, read_builtin
from edgecnn.files import atomic_path
from edgecnn.runtime.probe import PROBE_DIR, PROBE_PER_CLASS


def probe(name: str, data_root: str) -> tuple[np.ndarray, np.ndarray]:
    test = read_builtin(name, "test", data_root)
    labels = test.labels
    rows = np.sort(np.concatenate([np.flatnonzero(labels == c)[:PROBE_PER_CLASS] for c in np.unique(labels)]))
    return np.ascontiguousarray(test.images[rows, 0]), labels[rows].astype(np.uint8)


def main() -> int:
    root = os.environ.get("EDGECNN_DATA") or str(Path(__file__).resolve().parents[1].parent / "shared" / "datasets")
    for name in BUILTIN_DATASETS:
        images, labels = probe(name, root)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, images=images, labels=labels)
        with atomic_path(PROBE_DIR / f"{name}.npz") as tmp:
            tmp.write_bytes(buffer.getvalue())
        print(f"{name}: {len(images)} images, {(PROBE_DIR / f'{name}.npz').stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
