"""Ship an exported model or atom-vector table inside the package: copy its files and record their sha256.

    python -m pretraining.bundle runs/ct --name crystal-twins --method crystal-twins \\
        --trained-on "mp_cgcnn + castelli_perovskites + carbon24 (49,732 structures)"
    python -m pretraining.bundle runs/crysatom-vectors --name crysatom --atom-vectors --trained-on "..."
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

from matssl_featurizers import atom_vectors, bundled
from matssl_featurizers.encoders import PretrainedEncoder
from matssl_featurizers.sources import CARD_NAME, CHECKSUMS_NAME, CONFIG_NAME, METADATA_NAME, WEIGHTS_NAME


def _record(index_name: str, name: str, entry: dict) -> None:
    index_path = bundled.bundled_root() / index_name
    index = json.loads(index_path.read_text())
    index[name] = entry
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def bundle(source: Path, name: str, method: str, trained_on: str) -> Path:
    """Copy the model folder ``source`` into the package as ``name`` (in the current file format, with ``method`` and
    ``trained_on`` in its metadata) and record the sha256 of its files in ``models/index.json``."""
    encoder = PretrainedEncoder.from_pretrained(source)  # refuses anything the loader would refuse
    encoder.info = dataclasses.replace(encoder.info, method=method,
                                       provenance={**encoder.info.provenance, "trained_on": trained_on})
    target = bundled.bundled_root() / name
    encoder.save_pretrained(target)
    (target / CHECKSUMS_NAME).unlink()  # models/index.json holds the sha256 of a bundled model
    _record("index.json", name, {
        "directory": name,
        "method": method,
        "trained_on": trained_on,
        "sha256": {file: bundled.sha256(target / file) for file in (CONFIG_NAME, METADATA_NAME, WEIGHTS_NAME)},
    })
    return target


def bundle_atom_vectors(source: Path, name: str, trained_on: str) -> Path:
    atom_vectors.load_atom_vectors(source)  # refuse anything the loader would refuse
    target = bundled.bundled_root() / name
    target.mkdir(parents=True, exist_ok=True)
    for file in (atom_vectors.ATOM_VECTORS_NAME, CARD_NAME):
        shutil.copyfile(Path(source) / file, target / file)
    file = f"{name}/{atom_vectors.ATOM_VECTORS_NAME}"
    _record("atom_vectors.json", name, {"file": file, "trained_on": trained_on,
                                        "sha256": bundled.sha256(bundled.bundled_root() / file)})
    return target


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pretraining.bundle", description=__doc__.split("\n")[0])
    p.add_argument("source", type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--method", help="the pretraining method of a model (not needed with --atom-vectors)")
    p.add_argument("--trained-on", required=True)
    p.add_argument("--atom-vectors", action="store_true", help="SOURCE holds atom_vectors.csv, not an encoder")
    args = p.parse_args(argv)
    if args.atom_vectors:
        print(bundle_atom_vectors(args.source, args.name, args.trained_on))
    elif args.method is None:
        p.error("--method is required for a model")
    else:
        print(bundle(args.source, args.name, args.method, args.trained_on))
    return 0


if __name__ == "__main__":
    sys.exit(main())
