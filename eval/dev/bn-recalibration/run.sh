#!/bin/bash
# Batch-norm statistics of clean structures (see README.md): recalibrate, then one pretraining.evaluation.evaluate per dataset.
set -e
cd "$(dirname "$0")/../../.."
D=../shared/data
for m in masked-denoising crystal-twins crystalclr; do
  python eval/dev/bn-recalibration/recalibrate.py --source $m --out runs/bn/$m
done
for s in 0 1 2; do
  python eval/dev/bn-recalibration/recalibrate.py --source masked-denoising --random-seed $s --out runs/bn/random-$s
done
F=masked-denoising,runs/bn/masked-denoising,crystal-twins,runs/bn/crystal-twins,crystalclr,runs/bn/crystalclr,random:masked-denoising,runs/bn/random-0,runs/bn/random-1,runs/bn/random-2,inputs:masked-denoising
run() { python -m pretraining.evaluation.evaluate --data $D/$2 --target $3 --split dev --limit 1000 --folds 3 --max-features 0.33 --random-seeds 0,1,2 --readout layers --featurizers $F --out eval/dev/bn-recalibration/$1; }
run jarvis jarvis_dft3d.jsonl.gz formation_energy_peratom,optb88vdw_bandgap
run carbon24 carbon24.jsonl.gz energy_per_atom
run castelli castelli_perovskites.jsonl.gz e_form
run dielectric jarvis_dft3d.jsonl.gz epsx
