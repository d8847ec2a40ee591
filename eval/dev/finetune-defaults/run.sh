#!/usr/bin/env bash
# The study of eval/dev/finetune-defaults: every configuration on the three small dev tasks, then the large check,
# two runs at a time (each on one thread). Run from the repo root; results in small/ and large/, log in study.log.
# A result already there is kept, so the script continues an interrupted study.
set -euo pipefail
here=eval/dev/finetune-defaults
run() {  # the commands on stdin, two at a time
    xargs -r -P 2 -I{} bash -c "{}" 2>&1 | { grep -v Warning || true; } | tee -a $here/study.log
}
declare -A tasks=([castelli]=castelli_perovskites.jsonl.gz:e_form [carbon24]=carbon24.jsonl.gz:energy_per_atom
                  [jarvis]=jarvis_dft3d.jsonl.gz:formation_energy_peratom)
for config in constant plateau plateau-encoder-lr plateau-encoder-lr-freeze cosine-encoder-lr plateau-encoder-lr-batch32; do
    for name in castelli carbon24 jarvis; do
        out=$here/small/$name-$config.json
        [ -f "$out" ] || echo "python $here/study.py --task ../shared/data/${tasks[$name]} --config $config --out $out"
    done
done | run
# the large check, after the small runs chose a winner (plateau, lowest mean rank): constant, plateau-encoder-lr, plateau
for config in constant plateau plateau-encoder-lr; do
    out=$here/large/mp-$config.json
    [ -f "$out" ] || echo "python $here/study.py --task ../shared/data/mp_cgcnn.jsonl.gz:formation_energy_per_atom --config $config --extra-train 10000 --out $out"
done | run
