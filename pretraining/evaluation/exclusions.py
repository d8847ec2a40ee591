"""Write the ids of every published task's test and dev rows, one per line: what pretraining leaves out.

    python -m pretraining.evaluation.exclusions --data-dir ../shared/data --out eval/splits/evaluation_ids.txt

``python -m pretraining.run --exclude eval/splits/evaluation_ids.txt`` then never sees a row the evaluations score
(:mod:`pretraining.evaluation.tasks`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .tasks import evaluation_ids


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pretraining.evaluation.exclusions", description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, required=True, help="the folder holding the task files (the shared datasets)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    ids = evaluation_ids(args.data_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(f"{i}\n" for i in ids))
    print(f"wrote {len(ids)} ids to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
