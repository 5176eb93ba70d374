"""The image files `edgecnn predict` classifies: arguments expanded into files (folders walked, ``-`` for stdin),
classified in chunks with an error per unreadable file, and with ``--output FILE`` (or ``--engine ray``) every
file's row in one CSV, JSONL or Parquet file, made here or on Ray Data, resumable after a kill
(runtime/result_files.py, cluster/batch_predict.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from edgecnn.config import ClusterConfig
from edgecnn.errors import ConfigError

__all__ = ["predict_to_file", "expand", "chunks", "classify", "CHUNK", "PROGRESS_FROM"]

CHUNK = 256  # images decoded and classified together: bounded memory for folders of any size
PROGRESS_FROM = 300  # more files than this get a progress bar (on a terminal)


def predict_to_file(
    model: Path,
    images: tuple[str, ...],
    output: str | None,
    cluster: ClusterConfig,
    *,
    make: dict[str, Any],
    top_k: int,
    invert: bool,
) -> None:
    """Classify ``images`` into ``output``; exit 1 if any file has an error (as the printing command does)."""
    from edgecnn.cli.requires import require
    from edgecnn.files import file_sha256
    from edgecnn.runtime.result_files import ResultFile, error_row

    if output is None:
        raise ConfigError("predict --engine ray writes its rows to a file: add --output FILE.csv|.jsonl|.parquet")
    if cluster.engine == "ray":
        require("ray", "edgecnn predict --engine ray")
    run = {"model_sha256": file_sha256(model), "top_k": top_k, "invert": invert, **_plain(make)}
    results = ResultFile(output, run)
    files, problems = _listed(images, uris=cluster.engine == "ray")
    results.add([error_row(path, f"{path}: {why}") for path, why in problems if path not in results.done])
    if cluster.engine == "ray":
        from edgecnn.cluster.batch_predict import predict_on_ray
        from edgecnn.cluster.serving import ship_models

        (shipped,) = ship_models([str(model)], zoo_dir=None)
        predict_on_ray(
            shipped, files, results, cluster, options={"make": make, "top_k": top_k, "invert": invert}, say=_say
        )
    else:
        _predict_here(model, files, results, make=make, top_k=top_k, invert=invert)
    failed = results.finish([path for path, _ in problems] + files)
    total = len(files) + len(problems)
    _say(f"wrote {total} row(s) to {output}" + (f"; {failed} with an error" if failed else ""))
    if not total:
        click.echo("edgecnn: error: no image files found in the given folders", err=True)
    if failed or not total:
        sys.exit(1)


def _predict_here(
    model: Path, files: list[str], results: Any, *, make: dict[str, Any], top_k: int, invert: bool
) -> None:
    from edgecnn.cli.stop import stoppable
    from edgecnn.runtime import Predictor
    from edgecnn.runtime.result_files import error_row, result_row

    predictor = Predictor(model, **make)
    todo = [file for file in dict.fromkeys(files) if file not in results.done]
    with stoppable() as on_ctrl_c:
        on_ctrl_c(predictor.engine.stop)
        for chunk in chunks(todo):
            rows = classify(predictor, chunk, top_k, invert=invert)
            results.add([error_row(r["file"], r["error"]) if "error" in r else result_row(r["file"], r) for r in rows])


def _listed(arguments: tuple[str, ...], *, uris: bool) -> tuple[list[str], list[tuple[str, str]]]:
    """Files and (path, why) problems: local arguments as `edgecnn predict` expands them; with Ray, URIs too."""
    files, problems = [], []
    for argument in arguments:
        if uris and "://" in argument:
            from edgecnn.cluster.batch_predict import list_uris

            found, trouble = list_uris(argument)
        else:
            found, trouble = expand((argument,))
        files += [os.path.abspath(f) if uris and "://" not in f else f for f in found]  # workers run elsewhere
        problems += trouble
    return files, problems


def _plain(make: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in make.items()}


def _say(line: str) -> None:
    click.echo(f"edgecnn: {line}", err=True)


def expand(arguments: tuple[str, ...]) -> tuple[list[str], list[tuple[str, str]]]:
    """(files, problems): files as given; folders → their image files, recursively, sorted; ``-`` → paths read
    from stdin. A sub-folder that cannot be listed, or a link that loops, is a (path, why) problem: no image is
    lost without a word."""
    from edgecnn.data.folders import walk_image_files
    from edgecnn.runtime.images import IMAGE_SUFFIXES

    files: list[str] = []
    problems: list[tuple[str, str]] = []
    for argument in arguments:
        if argument == "-":
            files += [line.strip() for line in sys.stdin if line.strip()]
        elif Path(argument).is_dir():
            found, trouble = walk_image_files(argument, IMAGE_SUFFIXES)  # the files predict takes, the data tier's walk
            files += sorted(found)
            problems += trouble
        else:
            files.append(argument)
    return files, problems


def chunks(files: list[str]) -> Iterator[list[str]]:
    from tqdm import tqdm

    show = sys.stderr.isatty() and len(files) > PROGRESS_FROM
    with tqdm(total=len(files), unit="image", disable=not show, file=sys.stderr, leave=False) as bar:
        for start in range(0, len(files), CHUNK):
            yield files[start : start + CHUNK]
            bar.update(min(CHUNK, len(files) - start))


def classify(predictor: Any, paths: list[str], top_k: int, *, invert: bool) -> list[dict[str, Any]]:
    from edgecnn.errors import ImageError
    from edgecnn.runtime.images import load_image

    results: dict[str, Any] = {}
    loaded = {}
    for path in paths:
        try:
            loaded[path] = load_image(path)
        except ImageError as exc:
            results[path] = {"file": path, "error": str(exc)}
    if loaded:
        predictions = predictor.predict(list(loaded.values()), top_k, invert=invert)
        for path, result in zip(loaded, predictions, strict=True):
            results[path] = {"file": path, **result.to_dict()}
    return [results[path] for path in paths]
