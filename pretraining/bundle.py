"""Ship an exported model inside the package: copy its files and record their sha256.

    python -m pretraining.bundle runs/ct --name crystal-twins --method crystal-twins \\
        --trained-on "mp_cgcnn + castelli_perovskites + carbon24 (49,732 structures)"
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from matssl_featurizers import weights

FILES = (weights.CONFIG_NAME, weights.WEIGHTS_NAME, weights.CARD_NAME)


def bundle(source: Path, name: str, method: str, trained_on: str) -> Path:
    weights.load_encoder(source)  # refuse anything the loader would refuse
    root = weights.bundled_root()
    target = root / name
    target.mkdir(parents=True, exist_ok=True)
    for file in FILES:
        shutil.copyfile(source / file, target / file)
    index_path = root / "index.json"
    index = json.loads(index_path.read_text())
    index[name] = {
        "directory": name,
        "method": method,
        "trained_on": trained_on,
        "sha256": {file: weights.sha256(target / file) for file in (weights.CONFIG_NAME, weights.WEIGHTS_NAME)},
    }
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return target


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pretraining.bundle", description=__doc__.split("\n")[0])
    p.add_argument("source", type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--trained-on", required=True)
    args = p.parse_args(argv)
    print(bundle(args.source, args.name, args.method, args.trained_on))
    return 0


if __name__ == "__main__":
    sys.exit(main())
