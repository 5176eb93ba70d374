"""The zoo's text: ``models/NAME/card.json`` + ``card.md``, ``models/README.md`` and ``models/index.json``,
all generated from the measured figures (nothing here is typed by hand)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from zoo_checked import targets_section, verified_note, verified_on
from zoo_recipes import ZOO, ZooNet

from edgecnn.files import atomic_path

__all__ = ["write_card", "write_index", "write_readme", "INDEX_FORMAT"]

INDEX_FORMAT = "edgecnn-zoo-1"


def _write(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f} %"


def write_card(out: Path, card: dict[str, Any], net: ZooNet) -> None:
    card = {**card, "dataset": net.dataset, "goal": net.goal, "published": net.published, "tutorial": net.tutorial}
    card["use"], card["tried"] = net.use, net.tried
    _write(out / "card.json", json.dumps(card, indent=2, sort_keys=True) + "\n")
    _write(out / "card.md", render_card(card))


def render_card(card: dict[str, Any]) -> str:
    name, net, acc = card["name"], card["net"], card["accuracy"]
    sections = [
        f"# `{name}`: {card['dataset']} classifier from the edgecnn zoo\n",
        "## Intended use and input\n\n" + card["use"] + "\n",
        _data_section(card),
        _recipe_section(card),
        _accuracy_section(card),
        _per_class_section(net["classes"], acc["per_class"]),
        _model_section(card),
        _latency_section(card["latency"]),
        *([targets_section(card)] if card.get("targets") else []),
        _rebuild_section(card),
        _limitations_section(card),
        "## Curves and confusion matrix\n\n![training curves](curves.png)\n\n![confusion matrix](confusion.png)\n",
    ]
    return "\n".join(sections)


def _data_section(card: dict[str, Any]) -> str:
    net, acc = card["net"], card["accuracy"]
    return (
        "## Data\n\n"
        f"{card['dataset']} (torchvision's files). Training: the training set less {acc['val']['samples']:,} "
        "validation images held out per class (seeded), which chose the epoch kept; the test set "
        f"({acc['test']['samples']:,} images) was measured once, after training. Data SHA-256 (both splits' "
        f"pixels and labels): `{net['data_sha256']}`.\n"
    )


def _recipe_line(config: dict[str, Any]) -> str:
    keys = ("optimizer", "lr", "weight_decay", "schedule", "label_smoothing", "augment", "batch_size", "epochs")
    return ", ".join(f"{k} {config[k]}" for k in keys)


def _recipe_section(card: dict[str, Any]) -> str:
    ours, theirs = card["recipes"]["edgecnn"], card["recipes"]["tutorial"]
    return (
        "## Recipe\n\n"
        f"- **edgecnn's recipe** (shipped): {_recipe_line(ours['config'])}; seed {ours['config']['seed']}; "
        f"epoch {ours['best_epoch']} of {ours['epochs_run']} kept (best validation accuracy); "
        f"{ours['train_seconds'] / 60:.1f} min on {ours['threads']} torch thread(s).\n"
        f"- **The tutorial's recipe, here**: {card['tutorial']} → {_recipe_line(theirs['config'])}; "
        f"epoch {theirs['best_epoch']} of {theirs['epochs_run']} kept; {theirs['train_seconds'] / 60:.1f} min.\n"
        + (f"- **Tried before**: {card['tried']}\n" if card.get("tried") else "")
    )


def _accuracy_section(card: dict[str, Any]) -> str:
    acc, recipes = card["accuracy"], card["recipes"]
    rows = [
        "| | torch | fp32 ONNX | int8 ONNX |",
        "|---|---|---|---|",
        *(
            f"| {split} | " + " | ".join(_pct(acc[split][k]) for k in ("torch", "fp32", "int8")) + " |"
            for split in ("val", "test")
        ),
    ]
    return (
        "## Accuracy\n\n"
        + "\n".join(rows)
        + f"\n\nint8 vs fp32 top-1 agreement on the test set: {_pct(acc['int8_fp32_agreement'])}. int8 file: "
        f"`{card['int8']['mode']}` ({card['int8']['chosen_by']}).\n\n"
        "| | test accuracy |\n|---|---|\n"
        f"| the tutorial's published figure | {card['published']} |\n"
        f"| the tutorial's recipe, on edgecnn's trainer | {_pct(recipes['tutorial']['test_accuracy'])} |\n"
        f"| edgecnn's recipe (this model, torch) | {_pct(acc['test']['torch'])} |\n"
        f"| goal | ≥ {_pct(card['goal'])} |\n"
    )


def _per_class_section(classes: list[str], per_class: dict[str, list[float]]) -> str:
    rows = ["| class | torch | fp32 ONNX | int8 ONNX |", "|---|---|---|---|"]
    for i, cls in enumerate(classes):
        rows.append(f"| {cls} | " + " | ".join(_pct(per_class[k][i]) for k in ("torch", "fp32", "int8")) + " |")
    return "## Per-class test accuracy\n\n" + "\n".join(rows) + "\n"


def _model_section(card: dict[str, Any]) -> str:
    net, files = card["net"], card["files"]
    norm = net["normalization"]
    return (
        "## Model\n\n"
        f"- Architecture `{net['arch']}`, input {'×'.join(map(str, net['input_shape']))} "
        f"(normalised with mean {norm['mean']}, std {norm['std']}; the ONNX files carry it in their metadata), "
        f"{len(net['classes'])} classes.\n"
        f"- {net['parameters']:,} parameters, {net['macs']:,} multiply-accumulates per image.\n"
        f"- Files: `{files['fp32']['path']}` {files['fp32']['bytes'] / 1024:,.0f} kB, `{files['int8']['path']}` "
        f"{files['int8']['bytes'] / 1024:,.0f} kB, `{net['arch']}.safetensors` {card['weights_bytes'] / 1024:,.0f} kB "
        "(weights only, no pickle; the card and training config in its header).\n"
    )


def _latency_section(latency: dict[str, Any]) -> str:
    env, rows = latency["environment"], latency["rows"]
    lines = [
        "| file | b1 p50 ms | b1 p99 ms | b64 p50 ms | b64 images/s | cold start ms |",
        "|---|---|---|---|---|---|",
    ]
    for key in ("fp32", "int8"):
        r = rows[key]
        lines.append(
            f"| {key} | {r['b1']['p50']:.3f} | {r['b1']['p99']:.3f} | {r['b64']['p50']:.3f} | "
            f"{r['b64']['throughput']:,.0f} | {r['cold_start_ms'] or 0:,.0f} |"
        )
    return (
        "## Latency on the build machine\n\n"
        + "\n".join(lines)
        + f"\n\nBoth files interleaved in one run, {latency['iters']} timed runs per batch size, "
        f"{rows['fp32']['threads']} onnxruntime thread(s), sessions "
        f"{'spinning' if latency['spinning'] else 'not spinning'}.\n"
        f"Machine: {env['cpu']} ({env['cores']} logical / {env['physical_cores']} physical cores; "
        f"{', '.join(env['cpu_flags'])}), {env['system']}, Python {env['python']}, numpy {env['numpy']}, "
        f"onnxruntime {env['onnxruntime']}, edgecnn {env['edgecnn']}.\n"
    )


def _rebuild_section(card: dict[str, Any]) -> str:
    name = card["name"]
    commands = []
    for recipe in ("edgecnn", "tutorial"):
        config = card["recipes"][recipe]["config"]
        keys = ("arch", "dataset", "seed", "optimizer", "lr", "weight_decay", "schedule", "warmup_epochs")
        keys += ("label_smoothing", "augment", "batch_size", "epochs")
        args = " ".join(f"--{k.replace('_', '-')} {shlex.quote(str(config[k]))}" for k in keys)
        commands.append(f"edgecnn train --out runs/zoo/{name}/{recipe} {args}")
    return (
        "## Rebuild\n\n```bash\n"
        f"EDGECNN_DATA=DIR .venv/bin/python tools/build_zoo.py --only {name}   # both recipes, export, card\n"
        + "\n".join(commands)
        + "\n```\n\nTraining is deterministic for a given torch version and thread count; another CPU's kernels "
        "may move the last digits.\n"
    )


def _limitations_section(card: dict[str, Any]) -> str:
    classes, per_class = card["net"]["classes"], card["accuracy"]["per_class"]["int8"]
    worst = sorted(range(len(classes)), key=per_class.__getitem__)[:2]
    weak = ", ".join(f"{classes[i]} ({_pct(per_class[i])})" for i in worst)
    return (
        "## Known limitations\n\n"
        f"- Trained on {card['dataset']} only: 28×28 greyscale, one centred item. Anything else (colour scenes, "
        "several items, other kinds of objects) gets a confident answer from these ten classes all the same: "
        "there is no 'none of these' class.\n"
        f"- Weakest classes (int8, test set): {weak}.\n"
        "- The runtime's framing (`fit`) turns photos into this framing; how well that works per kind of photo "
        "is measured in BENCHMARKS.md (the framing table).\n"
    )


def write_index(models: Path) -> None:
    """``models/index.json``: each net's variants and every file under models/ with its SHA-256 and size —
    through the runtime's own ``build_index``, so the index is validated as ``load_index`` will read it."""
    from edgecnn.runtime.zoo_index import INDEX_NAME, ZooEntry, build_index

    entries = []
    for card_path in sorted(models.glob("*/card.json")):
        card = json.loads(card_path.read_text())
        name = card["name"]
        entries.append(
            ZooEntry(
                name=name,
                dataset=card["dataset"],
                summary=f"{card['net']['parameters']:,} parameters; default {_default_note(card)}",
                default="int8" if card["int8"]["chosen_by"] == "auto" else "fp32",  # auto's choice
                variants={k: f"{name}/{v['path']}" for k, v in card["files"].items()},
                int8_mode=card["int8"]["mode"],
                test_accuracy={k: card["accuracy"]["test"][k] for k in ("torch", "fp32", "int8")},
            )
        )
    others = [
        path.relative_to(models).as_posix()
        for path in sorted(models.rglob("*"))
        if path.is_file() and path.name != INDEX_NAME and not path.relative_to(models).parts[0].startswith(".")
    ]
    index = build_index(models, entries, others)
    _write(models / INDEX_NAME, json.dumps(index.to_dict(), indent=2, sort_keys=True) + "\n")


def _default_note(card: dict[str, Any]) -> str:
    mode, runtime = card["int8"]["mode"], (card["int8"].get("auto") or {}).get("runtime") or {}
    if card["int8"]["chosen_by"] != "auto":
        return f"fp32 (auto: {mode} int8 not faster)"
    backend = runtime.get("backend", "onnxruntime")
    return f"int8 ({mode})" + (f", run on {backend} where installed" if backend != "onnxruntime" else "")


def write_readme(models: Path) -> None:
    cards = [json.loads(p.read_text()) for p in sorted(models.glob("*/card.json"))]
    order = {name: i for i, name in enumerate(ZOO)}
    cards.sort(key=lambda c: order.get(c["name"], 99))
    header = (
        "| net | dataset | tutorial's figure | tutorial's recipe here | edgecnn (torch) | fp32 ONNX | int8 ONNX | "
        "goal | `zoo:NAME` gives | parameters | MACs | int8 kB | int8 b1 p50 ms | int8 b64 images/s | verified on |"
    )
    rows = [header, "|" + "---|" * 15]
    for c in cards:
        test, lat = c["accuracy"]["test"], c["latency"]["rows"]["int8"]
        rows.append(
            f"| [`{c['name']}`]({c['name']}/card.md) | {c['dataset']} | {c['published']} | "
            f"{_pct(c['recipes']['tutorial']['test_accuracy'])} | {_pct(test['torch'])} | {_pct(test['fp32'])} | "
            f"{_pct(test['int8'])} | ≥ {_pct(c['goal'])} | {_default_note(c)} | {c['net']['parameters']:,} | "
            f"{c['net']['macs']:,} | {c['files']['int8']['bytes'] / 1024:,.0f} | {lat['b1']['p50']:.3f} | "
            f"{lat['b64']['throughput']:,.0f} | {verified_on(c)} |"
        )
    env = cards[0]["latency"]["environment"] if cards else {}
    text = (
        "# The edgecnn model zoo\n\n"
        "Generated by `tools/build_zoo.py` from the measured figures; do not edit by hand.\n\n"
        "Test-set accuracy (10,000 images, measured once after training); latency of the int8 file on the build "
        f"machine ({env.get('cpu', '?')}, {env.get('cores', '?')} cores, onnxruntime {env.get('onnxruntime', '?')}). "
        "Each net's card has the rest: validation figures, per-class accuracy, both recipes, fp32 latency, the "
        "environment and the command that rebuilds it."
        + verified_note(cards)
        + "\n\n"
        + "\n".join(rows)
        + "\n\n## Use\n\n```bash\nedgecnn zoo                                   # what is here\n"
        "edgecnn predict zoo:fashion_bn shirt.png       # auto's choice by default; zoo:NAME:fp32|int8 to pick\n"
        "edgecnn train --init zoo:keras_same --dataset my_photos/ --out runs/mine   # fine-tune on your folder\n"
        "```\n\n```python\nfrom edgecnn.runtime import Predictor\n\n"
        'Predictor.from_zoo("fashion_bn", variant="int8").predict("shirt.png")\n```\n\n'
        "A name alone (`zoo:NAME`) gives the file `auto` chose when the zoo was built: int8 where it was faster "
        "on the build machine, else fp32 (the int8 mode column says which). Every file is listed in `index.json` "
        "with its SHA-256; the runtime checks it before loading. The int8 and the default files also ship inside "
        "the wheel.\n"
    )
    _write(models / "README.md", text)
