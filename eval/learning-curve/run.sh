#!/bin/bash
# Learning curve on the headline's test folds: frozen features with 100 and 400 training labels per fold.
cd "$(dirname "$0")/../.."
# F (featurizers) and OUT (results folder) may be set from outside; the defaults wrote eval/learning-curve/test/.
D=../shared/data
F=${F:-'ElementProperty,preset:hybrid+ElementProperty,masked-denoising,inputs:masked-denoising,random:masked-denoising'}
OUT=${OUT:-eval/learning-curve/test}
run() { python -m pretraining.evaluation.evaluate --data $D/$2 --target $3 --split test --folds 5 --train-sizes 100,400 --random-seeds 0,1,2 --max-features 0.33 --featurizers "$F" --out $OUT/$1; }
run mp_cgcnn mp_cgcnn.jsonl.gz formation_energy_per_atom,band_gap,efermi
run castelli_perovskites castelli_perovskites.jsonl.gz e_form
run carbon24 carbon24.jsonl.gz energy_per_atom
run jarvis_dft3d jarvis_dft3d.jsonl.gz formation_energy_peratom,optb88vdw_bandgap
run jarvis_dielectric jarvis_dft3d.jsonl.gz epsx
run jarvis_efg jarvis_dft3d.jsonl.gz max_efg
