#!/bin/bash
# Dev-split comparison of a density block beside preset:hybrid-anisotropy (see README.md); one pretraining.evaluation.evaluate per dataset.
cd "$(dirname "$0")/../../.."
D=../shared/data
F='ElementProperty,DensityFeatures+ElementProperty,preset:hybrid-anisotropy+ElementProperty,preset:hybrid-anisotropy+DensityFeatures+ElementProperty'
run() { python -m pretraining.evaluation.evaluate --data $D/$2 --target $3 --split dev --limit 1000 --folds 3 --max-features 0.33 --featurizers "$F" --out eval/dev/density-block/$1; }
run dielectric jarvis_dft3d.jsonl.gz epsx
run efg jarvis_dft3d.jsonl.gz max_efg
run jarvis jarvis_dft3d.jsonl.gz formation_energy_peratom,optb88vdw_bandgap
run carbon24 carbon24.jsonl.gz energy_per_atom
run castelli castelli_perovskites.jsonl.gz e_form
