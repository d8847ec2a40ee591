#!/bin/bash
# 30 % masked elements (see README.md): the pretraining run, then one pretraining.evaluation.evaluate per dataset.
set -e
cd "$(dirname "$0")/../../.."
D=../shared/data
python -m pretraining.run --method masked-denoising --data $D/mp_cgcnn.jsonl.gz $D/mp_topology_extra.jsonl.gz \
  $D/castelli_perovskites.jsonl.gz $D/carbon24.jsonl.gz --exclude eval/splits/evaluation_ids.txt --epochs 20 \
  --batch-size 128 --lr 1e-3 --time-limit 1.5 --seed 0 --mask-ratio 0.3 --out runs/masked-denoising-mask30 --no-progress
F=masked-denoising,runs/masked-denoising-mask30,random:masked-denoising,inputs:masked-denoising
run() { python -m pretraining.evaluation.evaluate --data $D/$2 --target $3 --split dev --limit 1000 --folds 3 --max-features 0.33 --random-seeds 0,1,2 --readout layers --featurizers $F --out eval/dev/masked-denoising-mask30/$1; }
run jarvis jarvis_dft3d.jsonl.gz formation_energy_peratom,optb88vdw_bandgap
run carbon24 carbon24.jsonl.gz energy_per_atom
run castelli castelli_perovskites.jsonl.gz e_form
run dielectric jarvis_dft3d.jsonl.gz epsx
