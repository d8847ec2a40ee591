"""Featurize real crystal structures with the bundled default model and save the table.

    python examples/featurize_structures.py [STRUCTURES.jsonl.gz] [--out features.csv]

The default input is 40 JARVIS-DFT structures (examples/data/jarvis_sample.jsonl.gz), none of which
the bundled model saw during pretraining.
"""

import argparse
import gzip
import json
import warnings
from pathlib import Path

import pandas as pd
from pymatgen.core import Structure

from matssl_featurizers import SSLStructureFeaturizer

HERE = Path(__file__).parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", default=HERE / "data" / "jarvis_sample.jsonl.gz", type=Path)
    parser.add_argument("--out", default="features.csv", type=Path)
    parser.add_argument("--model", default=None, help="a bundled model (see list_models()); default: the package's default")
    args = parser.parse_args()

    opener = gzip.open if args.data.suffix == ".gz" else open
    with opener(args.data, "rt") as handle, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = [json.loads(line) for line in handle]
        df = pd.DataFrame(
            {"structure": [Structure.from_str(r["cif"], fmt="cif") for r in rows]},
            index=pd.Index([r["id"] for r in rows], name="id"),
        )
    df["formula"] = [s.composition.reduced_formula for s in df["structure"]]

    featurizer = SSLStructureFeaturizer() if args.model is None else SSLStructureFeaturizer(model=args.model)  # bundled: offline
    df = featurizer.featurize_dataframe(df, "structure")

    labels = featurizer.feature_labels()
    with pd.option_context("display.width", 120, "display.max_columns", 8):
        print(df[["formula"] + labels[:5]].head(10).round(4))
    print(f"\n{len(df)} structures x {len(labels)} features")
    df.drop(columns="structure").to_csv(args.out)
    print(f"wrote {args.out.resolve()}")


if __name__ == "__main__":
    main()
