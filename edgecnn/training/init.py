"""``--init``: start a run from trained weights, ``zoo:NAME`` or a ``.safetensors`` file.

The zoo's weights are found beside its ONNX files (``NAME/NAME.safetensors`` in a zoo folder: a checkout's
``models/`` or ``$EDGECNN_ZOO``; the wheel ships only ONNX files) and verified against the index's
SHA-256 before they are read. safetensors holds tensors and a text header only: nothing in it can run.
When the new dataset has another number of classes, the classifier head (the net's last Linear layer)
keeps its fresh initialisation and everything before it starts from the given weights — the usual path
for a user with a few hundred photos of their own.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from edgecnn.errors import ConfigError, ModelFileError, describe
from edgecnn.training.checkpoint import nonfinite_tensors

__all__ = ["load_initial_weights", "apply_initial_weights"]


def load_initial_weights(spec: str, arch: str) -> dict[str, torch.Tensor]:
    """The tensors ``spec`` names, checked to be weights of ``arch`` when their header says which net."""
    from safetensors import SafetensorError, safe_open

    path = _zoo_weights(spec) if spec.startswith("zoo:") else Path(spec).expanduser()
    if not path.is_file():
        raise ModelFileError(f"--init {spec}: no such file (give zoo:NAME or a .safetensors file)", path=path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"--init {spec}: {path} is not a readable safetensors file ({describe(exc)})") from exc
    broken = nonfinite_tensors(state)
    if broken:  # they would train on, and the divergence would be blamed on the learning rate
        more = f" and {len(broken) - 3} more" if len(broken) > 3 else ""
        raise ModelFileError(
            f"--init {spec}: {path} holds NaN or infinite values in {', '.join(broken[:3])}{more}; "
            "start from finite weights",
            path=path,
        )
    saved_arch = _header_arch(header)
    if saved_arch is not None and saved_arch != arch:
        raise ConfigError(f"--init {spec} holds {saved_arch} weights, not {arch}'s; train with --arch {saved_arch}")
    return state


def _header_arch(header: dict[str, str]) -> str | None:
    try:
        return json.loads(header["edgecnn.card"])["arch"]
    except (KeyError, TypeError, ValueError):
        return None


def _zoo_weights(spec: str) -> Path:
    from edgecnn.runtime.zoo import parse_zoo_spec, verify_file, zoo_dirs
    from edgecnn.runtime.zoo_index import INDEX_NAME, load_index

    name, variant = parse_zoo_spec(spec)
    if variant is not None:
        raise ConfigError(f"--init {spec}: give zoo:{name} (the weights), not one of its ONNX variants")
    relative, searched = f"{name}/{name}.safetensors", []
    for folder in zoo_dirs():
        if not (folder / INDEX_NAME).is_file():
            continue
        index = load_index(folder)
        searched.append(str(folder))
        if relative in index.files and index.path_of(relative).is_file():
            return verify_file(index, relative)
    raise ModelFileError(
        f"--init {spec}: no zoo folder searched ({', '.join(searched) or 'none found'}) holds {relative}; the "
        "wheel ships only ONNX files, no weights: set EDGECNN_ZOO to a checkout's models/, or give the file's path"
    )


def apply_initial_weights(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> list[str]:
    """Load ``state`` into ``model``; return the head's parameter names left fresh because their shapes
    differ (another number of classes). Any other difference is refused: it is not this net's weights."""
    own = model.state_dict()
    head = _head_prefix(model)
    fresh = [k for k, v in state.items() if k in own and own[k].shape != v.shape and k.startswith(head)]
    wrong = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and own[k].shape != v.shape and k not in fresh
    ]
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if wrong or missing or extra:
        details = "; ".join(
            part
            for part in (
                f"shapes differ: {', '.join(wrong[:3])}" if wrong else "",
                f"missing: {', '.join(missing[:3])}" if missing else "",
                f"unexpected: {', '.join(extra[:3])}" if extra else "",
            )
            if part
        )
        raise ConfigError(f"--init {source} does not fit this net ({details}); same --arch, --image-size and channels?")
    kept = {k: v for k, v in state.items() if k not in fresh}
    model.load_state_dict({**own, **kept})
    return fresh


def _head_prefix(model: nn.Module) -> str:
    """``features.…``-free name of the last Linear layer, with its trailing dot ("head.3.")."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    return names[-1] + "." if names else "\0"
