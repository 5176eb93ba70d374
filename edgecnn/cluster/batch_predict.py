"""``edgecnn predict --engine ray``: a folder (or a million files) classified on Ray Data, one Predictor per actor.

The driver lists the files (folders walked as ``edgecnn predict`` walks them; ``scheme://`` URIs through
pyarrow's filesystems, s3:// and gs:// included where pyarrow has them), drops those the output's parts already
hold (runtime/result_files.py), and hands the rest to Ray Data as rows of paths. ``map_batches`` with a class runs
them on ``--replicas`` actors (an autoscaling pool up to ``--max-replicas``), each holding one Predictor made from
the model's bytes: an actor reads each file itself, so a file that cannot be read or decoded is a row with its
error (the single-process command's words), never a failed job or a silent skip. The driver streams the rows
back and keeps each batch as a part; Ray retries a batch whose actor died, and a batch is only kept once it
came back whole, so every file has exactly one row. A killed run is resumed by running it again.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgecnn.cluster.ray_session import ray_cluster
from edgecnn.cluster.serving import ShippedModel
from edgecnn.config import ClusterConfig
from edgecnn.errors import ClusterError, EdgeCNNError, describe
from edgecnn.runtime.result_files import ResultFile, error_row, result_row

__all__ = ["BATCH", "predict_on_ray", "is_uri"]

BATCH = 64  # files per actor call: Predictor batches of this size, and the unit a retry repeats


def is_uri(text: str) -> bool:
    """``scheme://…`` (file://, s3://, gs://, …): read through pyarrow's filesystems, not as a local path."""
    return "://" in text


class _Classifier:
    """A Ray Data actor: one Predictor over the shipped model; a batch of paths in, a batch of rows out."""

    def __init__(self, model: ShippedModel, options: dict[str, Any]) -> None:
        from edgecnn.runtime import Predictor
        from edgecnn.runtime.tune_cache import cache_dir

        self.predictor = Predictor(model.materialize(cache_dir() / "ray-models").split("=", 1)[1], **options["make"])
        self.top_k, self.invert = options["top_k"], options["invert"]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        rows: dict[str, dict[str, Any]] = {}
        images = {}
        for path in batch["path"].tolist():
            try:
                images[path] = _open(path)
            except EdgeCNNError as exc:
                rows[path] = error_row(path, str(exc))
        if images:
            predictions = self.predictor.predict(list(images.values()), self.top_k, invert=self.invert)
            for path, prediction in zip(images, predictions, strict=True):
                rows[path] = result_row(path, prediction.to_dict())
        ordered = [rows[path] for path in batch["path"].tolist()]
        return {"row": [json.dumps(row) for row in ordered]}


def _open(path: str) -> Any:
    """An image by path or URI, checked as ``edgecnn predict`` checks it."""
    from PIL import Image

    from edgecnn.errors import ImageError
    from edgecnn.runtime.images import PIL_ERRORS, checked_image, load_image

    if not is_uri(path):
        return load_image(path)
    from pyarrow import fs

    try:
        filesystem, inner = fs.FileSystem.from_uri(path)
        with filesystem.open_input_file(inner) as file:
            data = file.read()
        return checked_image(Image.open(io.BytesIO(data)), path=path, first_frame=True)
    except (OSError, *PIL_ERRORS) as exc:
        raise ImageError(f"{path}: not a readable image ({describe(exc)})", path=path) from exc


def list_uris(uri: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The image files under ``uri`` (a file or a prefix), recursively, sorted; or (uri, why) if it cannot be listed."""
    from pyarrow import fs

    from edgecnn.runtime.images import IMAGE_SUFFIXES

    try:
        filesystem, inner = fs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(inner)
        if info.type == fs.FileType.File:
            return [uri], []
        found = filesystem.get_file_info(fs.FileSelector(inner, recursive=True))
    except (OSError, ValueError) as exc:
        return [], [(uri, f"cannot list it: {describe(exc)}")]
    scheme = uri.split("://", 1)[0]
    files = sorted(
        f"{scheme}://{item.path}" for item in found if item.is_file and item.path.lower().endswith(IMAGE_SUFFIXES)
    )
    return files, []


def _dataset(ray: Any, paths: list[str], model: ShippedModel, cluster: ClusterConfig, options: dict[str, Any]) -> Any:
    """Rows of paths → rows of results, on an actor pool of ``cluster.replicas`` (up to ``max_replicas``)."""
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ray.data.DataContext.get_current().enable_progress_bars = False  # ours below counts rows, not blocks
    pool = ray.data.ActorPoolStrategy(min_size=cluster.replicas, max_size=cluster.max_replicas or cluster.replicas)
    return ray.data.from_items([{"path": path} for path in paths]).map_batches(
        _Classifier,
        fn_constructor_kwargs={"model": model, "options": options},
        batch_size=BATCH,
        compute=pool,
        num_cpus=options["make"].get("threads") or 1,
    )


def predict_on_ray(
    model: ShippedModel,
    files: Sequence[str],
    results: ResultFile,
    cluster: ClusterConfig,
    *,
    options: dict[str, Any],
    say: Callable[[str], None],
) -> None:
    """Classify ``files`` not yet in ``results`` on Ray Data actors, keeping each batch of rows as it returns."""
    from tqdm import tqdm

    todo = [file for file in dict.fromkeys(files) if file not in results.done]
    if len(todo) < len(files):
        say(f"resuming: {len(files) - len(todo)} of {len(files)} file(s) already have their rows in {results.parts}")
    if not todo:
        return
    with ray_cluster(cluster.address, say=say):
        import ray

        dataset = _dataset(ray, todo, model, cluster, options)
        show = sys.stderr.isatty()
        try:
            with tqdm(total=len(todo), unit="image", disable=not show, file=sys.stderr, leave=False) as bar:
                for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                    rows = [json.loads(text) for text in batch["row"].tolist()]
                    results.add(rows)
                    bar.update(len(rows))
        except ray.exceptions.RayError as exc:
            raise ClusterError(
                f"Ray Data stopped: {describe(exc)}; the rows so far are kept in {results.parts} (run again to resume)"
            ) from exc
