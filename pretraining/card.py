"""Model cards (the ``README.md`` of an exported model directory)."""

from __future__ import annotations

import json
from pathlib import Path

EVALUATION_HEADING = "## Evaluation"
EVALUATION_PLACEHOLDER = (
    "Not evaluated yet. Run `python -m pretraining.evaluate ... --card DIR` to put a random-forest "
    "comparison against random weights of the same architecture here."
)


def loss_table(history: list[dict]) -> str:
    """Loss per epoch, with the terms of a composite loss (``train_<term>`` / ``val_<term>``) as extra columns."""
    terms = [k[len("train_"):] for k in history[0] if k.startswith("train_") and k != "train_loss"]
    header = ["epoch", "train loss", "validation loss"] + [f"{split} {t}" for t in terms for split in ("train", "validation")]
    lines = ["| " + " | ".join(header + ["seconds", "structures/s"]) + " |", "|" + "---|" * (len(header) + 2)]
    for h in history:
        cells = [str(h["epoch"]), f"{h['train_loss']:.4f}", f"{h['val_loss']:.4f}"]
        cells += [f"{h[f'{split}_{t}']:.4f}" for t in terms for split in ("train", "val")]
        lines.append("| " + " | ".join(cells + [f"{h['seconds']:.0f}", f"{h['structures_per_second']:.0f}"]) + " |")
    return "\n".join(lines)


def render(*, name: str, method: str, citation: str, commands: list[str], data: dict, options: dict, history: list[dict],
           best_epoch: int, config: dict, evaluation: str = EVALUATION_PLACEHOLDER) -> str:
    """The model card of a pretraining run."""
    first, last = history[0], history[-1]
    return f"""---
library_name: matssl-featurizers
tags: [materials, crystal-graph, self-supervised, {method}]
---
# {name}

Self-supervised crystal encoder trained with **{method}** by `python -m pretraining.run` of
matssl-featurizers. Load it with `SSLStructureFeaturizer(weights=...)` (a local directory or
`hf://OWNER/REPO`).

Method: {citation}

## Data
- sources: {", ".join(f"`{p}`" for p in data["paths"])}
- structures: {data["n_structures"]} readable ({data["n_skipped"]} unreadable entries skipped);
  {data["n_train"]} for training, {data["n_val"]} (5 %) for validation of the pretext loss
- no labels are used

## Training
- command{"s (a run resumed with --resume)" if len(commands) > 1 else ""}: {"; then ".join(f"`{c}`" for c in commands)}
- epochs: {len(history)} ; exported weights from epoch {best_epoch} (lowest validation loss)
- options: `{json.dumps(options, sort_keys=True)}`
- pretext loss: train {first['train_loss']:.4f} → {last['train_loss']:.4f}, validation
  {first['val_loss']:.4f} → {last['val_loss']:.4f} (epoch {first['epoch']} → {last['epoch']})

{loss_table(history)}

## Architecture (`config.json`)
```json
{json.dumps(config, indent=2)}
```

{EVALUATION_HEADING}
{evaluation.strip()}
"""


def set_evaluation(card_path: Path, evaluation: str, section: str | None = None) -> None:
    """Replace the evaluation section of an existing card or, with ``section``, only its subsection
    ``### section`` (up to the next ``### `` heading), appended when the card has none."""
    text = Path(card_path).read_text()
    head, _, tail = text.partition(EVALUATION_HEADING)
    if section is None:
        body = evaluation.strip()
    else:
        block = f"### {section}\n{evaluation.strip()}"
        old = tail.strip()
        if old == EVALUATION_PLACEHOLDER:
            old = ""
        start = old.find(f"### {section}\n")
        if start < 0:
            body = f"{old}\n\n{block}".strip()
        else:
            end = old.find("\n### ", start + 1)
            body = old[:start] + block + ("\n\n" + old[end + 1:] if end >= 0 else "")
    Path(card_path).write_text(head + EVALUATION_HEADING + "\n" + body.strip() + "\n")


def evaluation_of(card_path: Path) -> str:
    text = Path(card_path).read_text()
    _, found, tail = text.partition(EVALUATION_HEADING)
    return tail.strip() if found else EVALUATION_PLACEHOLDER


__all__ = ["render", "set_evaluation", "evaluation_of", "loss_table"]
