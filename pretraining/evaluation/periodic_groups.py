"""The share of main-group elements whose nearest neighbour is in their own group, for several element tables.

    python -m pretraining.evaluation.periodic_groups crysatom cgcnn92 matscholar

A table is a name or a path that :func:`matssl_featurizers.atom_vectors.load_atom_vectors` reads, or ``matscholar``
(the mat2vec vectors in matminer's data files); the measure is :func:`pretraining.evaluation.periodic_groups.same_group_share`.
"""

from __future__ import annotations

import argparse
import sys

from ..periodic_groups import load_table, same_group_share


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pretraining.evaluation.periodic_groups", description=__doc__.split("\n")[0])
    p.add_argument("tables", nargs="+", help="crysatom, cgcnn92, matscholar, or atom_vectors.csv paths")
    args = p.parse_args(argv)
    print("| vectors | main-group elements | nearest neighbour in the same group |\n|---|---|---|")
    for name in args.tables:
        share, count = same_group_share(load_table(name))
        print(f"| {name} | {count} | {share:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
