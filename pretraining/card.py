"""Model cards (the ``README.md`` of an exported model directory), in the usual Hugging Face form.

A card is YAML front matter and ``## `` sections. :func:`render` writes the sections a pretraining run
knows; ``pretraining.evaluation.readout_pca`` and ``pretraining.evaluation.evaluate --card`` fill in "Principal components" and
"Evaluation" with :func:`set_section` / :func:`set_evaluation`. Paths in commands are written relative to
the working directory (never as absolute machine paths).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from pathlib import Path

from .methods import ELEMENT_PROTOTYPES

EVALUATION_HEADING = "## Evaluation"
EVALUATION_PLACEHOLDER = (
    "Not evaluated yet. Run `python -m pretraining.evaluation.evaluate ... --card DIR` to put a random-forest "
    "comparison against random weights of the same architecture here."
)
WEIGHTS_LICENSE = "cc-by-4.0"
DATA_LICENSES = {
    "mp_cgcnn": "Materials Project (CC BY 4.0)",
    "mp_topology_extra": "Materials Project (CC BY 4.0)",
    "castelli_perovskites": "Castelli et al. cubic perovskites (CMR), as redistributed by CDVAE (MIT) and matminer",
    "carbon24": "Carbon-24, Pickard, Materials Cloud (open access)",
    "jarvis_dft3d": "JARVIS-DFT (NIST)",
}
MATERIALS_PROJECT_DATA = {"mp_cgcnn", "mp_topology_extra"}  # CC BY 4.0: weights trained on them carry its attribution
LAYERS_READOUT = ("the mean, maximum and standard deviation over the sites of every CGCNN layer, input layer included, "
                  "and the mean Gaussian expansion of the edge lengths")
PAPER_NOTES = {  # where our method differs from its paper, or where the paper is silent
    "crystal-twins": [
        f"Readout (`readout=layers`, the default since 0.2): {LAYERS_READOUT}; the paper mean-pools the last layer "
        "into a linear layer (`--readout head`).",
        "CGCNN's 92 element features are fixed inputs; 3 convolutions of width 64; projector "
        "Linear-BatchNorm-ReLU-Linear to 128; Barlow Twins standardises each dimension over the batch.",
        "Views: every site moved 0.05 Å in a random direction, then atoms and edges masked with probability 0.1 each.",
        "Adam with linear warm-up and cosine decay instead of a constant 1e-5; far fewer structures and epochs.",
    ],
    "crystalclr": [
        f"Readout (`readout=layers`): {LAYERS_READOUT} (`--readout head` gives the paper's).",
        "Augmentations on tensors, each with p = 0.5: site perturbation U(0, 0.5 x shortest distance), strain "
        "1 + U(0, 0.05) per lattice vector, column replace; NT-Xent + composition similarity, equally weighted.",
    ],
    "cdssl": [
        "The paper's loss reads only the final edge features, which leaves the last block's node and state updates "
        "and the Set2Set readouts untrained; a second linear head predicts each crystal's mean clean edge expansion "
        "from the exported vector (`--graph-weight`, 1 by default), so every exported weight is trained.",
        "Edge embeddings to recover: the parameter-free Gaussian expansion of the clean edge lengths (the paper does "
        "not define them); noise 0.1 Å per Cartesian coordinate.",
    ],
    "crysatom": [
        "Decoders: a linear layer with binary cross-entropy for the 92 CGCNN features, and a rank-one factorised "
        "bilinear layer for the edge multiplicity of node pairs (the paper's equations are not legible in our copy).",
    ],
    "masked-denoising": [
        "This pretext is this project's, not one of the four papers' methods: one corrupted view per crystal "
        "(15 % of elements masked, lattice strained by up to 5 % per vector, Gaussian position noise of 0.1 Å) and "
        "three heads: the masked elements, the noise (a rotation-equivariant sum over edge directions) and the "
        "volume strain (from the exported vector).",
        f"Readout (`readout=layers`): {LAYERS_READOUT}.",
    ],
}


def method_notes(method: str, options: dict) -> list[str]:
    """Where a run differs from its paper: the method's standing notes, then the additions it switched on."""
    notes = list(PAPER_NOTES.get(method, []))
    if method == "crysatom" and options.get("element_weight"):
        notes.append(element_term_note(options))
    return notes


def element_term_note(options: dict) -> str:
    """What CrysAtom's element term (this project's addition) did in a run with these options."""
    prototypes = ELEMENT_PROTOTYPES[options.get("element_prototypes", "learned")]
    return (f"Element term (`--element-weight {options['element_weight']}`, this project's addition, not in the paper): "
            "on the atom-masked view every node's final embedding is classified into its element by cosine similarity "
            f"(temperature {options.get('element_temperature', 0.1)}) to {prototypes}; masked sites must name their "
            "element from the environment alone.")


def card_options(text: str) -> dict:
    """The method options recorded in a card written by :func:`render` (empty if there are none)."""
    for line in text.splitlines():
        if line.startswith("- options: `") and line.endswith("`"):
            return json.loads(line[len("- options: `"):-1])
    return {}


def shell_word(word: str) -> str:
    """``word`` quoted for a POSIX shell as :func:`shlex.quote` does, except that a word with an apostrophe and
    nothing that double quotes would expand is put in double quotes: ``"the headline's folds"``, not
    ``'the headline'"'"'s folds'``."""
    if "'" in word and not any(c in word for c in '"$`\\!'):
        return f'"{word}"'
    return shlex.quote(word)


def command_line(module: str, argv) -> str:
    """``python -m MODULE ARGS`` as it ran (``argv`` None: the process's arguments), for results and cards."""
    return f"python -m {module} " + " ".join(shell_word(a) for a in (sys.argv[1:] if argv is None else argv))


def portable(command: str) -> str:
    """``command`` with absolute paths made relative to the working directory."""
    words = []
    for word in shlex.split(command):
        if os.path.isabs(word):
            word = os.path.relpath(word)
        words.append(word)
    return " ".join(shell_word(w) for w in words)


def loss_table(history: list[dict]) -> str:
    """Loss per epoch, with the terms of a composite loss (``train_<term>`` / ``val_<term>``) as extra columns."""
    terms = [k[len("train_"):] for k in history[0] if k.startswith("train_") and k != "train_loss"]
    header = ["epoch", "train loss", "validation loss"] + [f"{split} {t}" for t in terms for split in ("train", "validation")]
    lines = ["| " + " | ".join(header + ["learning rate", "seconds"]) + " |", "|" + "---|" * (len(header) + 2)]
    for h in history:
        cells = [str(h["epoch"]), f"{h['train_loss']:.4f}", f"{h['val_loss']:.4f}"]
        cells += [f"{h[f'{split}_{t}']:.4f}" for t in terms for split in ("train", "val")]
        lines.append("| " + " | ".join(cells + [f"{h['lr']:.2e}", f"{h['seconds']:.0f}"]) + " |")
    return "\n".join(lines)


def vector_sentence(encoder) -> str:
    """The card's one-line description of the structure vector of ``encoder`` (a ``PretrainedEncoder``)."""
    return (f"It turns a pymatgen `Structure` into a {encoder.out_features}-dim vector\n"
            f"(`{encoder.architecture}` encoder, readout `{encoder.config['readout']}`).")


def architecture_line(config: dict) -> str:
    return f"Architecture (`config.json`): `{json.dumps(config, sort_keys=True)}`"


def describe_encoder(card_path: Path, encoder) -> None:
    """Rewrite a card's vector description and architecture line for ``encoder`` (after the exported
    encoder changed, e.g. its readout or principal components)."""
    text = Path(card_path).read_text()
    text = re.sub(r"It turns a pymatgen `Structure` into a \d+-dim vector\n\(.*?\)\.",
                  lambda _: vector_sentence(encoder), text, count=1, flags=re.S)
    text = re.sub(r"^Architecture \(`config.json`\): `.*`$", lambda _: architecture_line(encoder.config), text, count=1,
                  flags=re.M)
    Path(card_path).write_text(text)


def render(*, name: str, method: str, citation: str, commands: list[str], data: dict, options: dict, history: list[dict],
           exported_epoch: int, encoder, evaluation: str = EVALUATION_PLACEHOLDER, export: str = "best") -> str:
    """The model card of a pretraining run whose encoder of ``exported_epoch`` was written (``export``: ``--export``)."""
    first, last = history[0], history[-1]
    exported = next(h for h in history if h["epoch"] == exported_epoch)
    why = "lowest validation loss," if export == "best" else "the last epoch, `--export last`; validation loss"
    files = [(Path(name).name.split(".")[0], count) for name, count in data["files"]]  # the files structures came from
    sources = {s for s, _ in files}
    licences = sorted({DATA_LICENSES.get(s, "see the data's own licence") for s in sources})
    attribution = ", which carries the Materials Project's attribution requirement" if MATERIALS_PROJECT_DATA & sources else ""
    excluded = (f"; {data['n_excluded']} structures whose ids are listed in {', '.join(data['exclude'])} (the "
                f"evaluation rows) and {data['n_duplicate_ids']} repeated ids left out") if data.get("exclude") else ""
    notes = "\n".join(f"- {n}" for n in method_notes(method, options))
    return f"""---
license: {WEIGHTS_LICENSE}
library_name: matssl-featurizers
tags: [materials-science, crystal-graph, self-supervised, matminer, {method}]
---
# {name}

A crystal encoder pretrained without labels with **{method}**, exported by `python -m pretraining.run` of
matssl-featurizers. {vector_sentence(encoder)}

## How to use
```python
from matssl_featurizers import SSLStructureFeaturizer
featurizer = SSLStructureFeaturizer(weights="path/to/this/folder")   # or hf://OWNER/REPO
df = featurizer.featurize_dataframe(df, "structure")
```

## Training data
- {", ".join(f"`{s}` ({k})" for s, k in files)}: {data["n_structures"]} structures used ({data["n_skipped"]} unreadable
  skipped{excluded}); {data["n_train"]} for training, {data["n_val"]} (5 %) to validate the pretext loss. No labels.
- Data licences: {"; ".join(licences)}. The weights are released under CC BY 4.0{attribution}; the code is MIT.

## Training procedure
- command{"s (resumed with --resume)" if len(commands) > 1 else ""}: {"; then ".join(f"`{portable(c)}`" for c in commands)}
- {len(history)} epoch{"s" if len(history) != 1 else ""}; exported weights from epoch {exported_epoch} ({why} {exported["val_loss"]:.4f})
- pretext loss: train {first["train_loss"]:.4f} → {last["train_loss"]:.4f}, validation {first["val_loss"]:.4f} →
  {last["val_loss"]:.4f} (epoch {first["epoch"]} → {last["epoch"]})
- options: `{json.dumps(options, sort_keys=True)}`

{loss_table(history)}

{architecture_line(encoder.config)}

{EVALUATION_HEADING}
{evaluation.strip()}

## Differences from the paper and limitations
{notes or "- none recorded"}
- Pretrained on a few CPU hours of real DFT structures, far less than the papers; see the evaluation before relying
  on the vectors.

## Citation
{citation or "(no paper: see the differences above)"}
"""


def set_section(card_path: Path, heading: str, text: str, before: str = EVALUATION_HEADING) -> None:
    """Replace the body of the ``heading`` section (``## ...``) of a card, or insert the section before
    ``before`` (at the end when the card has no such heading)."""
    card = Path(card_path).read_text()
    head, found, tail = card.partition(heading + "\n")
    if found:
        end = tail.find("\n## ")
        card = head + f"{heading}\n{text.strip()}\n" + (tail[end:] if end >= 0 else "")
    else:
        at = card.find(before)
        block = f"{heading}\n{text.strip()}\n\n"
        card = card[:at] + block + card[at:] if at >= 0 else card.rstrip() + "\n\n" + block
    Path(card_path).write_text(card)


def evaluation_of(card_path: Path) -> str:
    """The body of the evaluation section (up to the next ``## `` heading); the placeholder when the card has
    no such section or an empty one."""
    text = Path(card_path).read_text()
    _, found, tail = text.partition(EVALUATION_HEADING + "\n")
    end = tail.find("\n## ")
    body = (tail[:end] if end >= 0 else tail).strip()
    return body if found and body else EVALUATION_PLACEHOLDER


def set_evaluation(card_path: Path, evaluation: str, section: str | None = None) -> None:
    """Replace the evaluation section of an existing card or, with ``section``, only its subsection
    ``### section`` (up to the next ``### `` heading), appended when the card has none."""
    if section is None:
        body = evaluation.strip()
    else:
        block = f"### {section}\n{evaluation.strip()}"
        old = evaluation_of(card_path)
        if old == EVALUATION_PLACEHOLDER:
            old = ""
        start = old.find(f"### {section}\n")
        if start < 0:
            body = f"{old}\n\n{block}".strip()
        else:
            end = old.find("\n### ", start + 1)
            body = old[:start] + block + ("\n\n" + old[end + 1:] if end >= 0 else "")
    set_section(card_path, EVALUATION_HEADING, body)


__all__ = ["render", "set_section", "set_evaluation", "evaluation_of", "loss_table", "portable"]
