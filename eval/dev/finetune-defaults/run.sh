#!/usr/bin/env bash
# The study of eval/dev/finetune-defaults: every configuration on the three small dev tasks, then the large one,
# two runs at a time (each on one thread). Run from the repo root; results in small/ and large/, log in study.log.
set -euo pipefail
here=eval/dev/finetune-defaults
declare -A tasks=([castelli]=castelli_perovskites.jsonl.gz:e_form [carbon24]=carbon24.jsonl.gz:energy_per_atom
                  [jarvis]=jarvis_dft3d.jsonl.gz:formation_energy_peratom)
jobs=()
for config in constant plateau plateau-encoder-lr plateau-encoder-lr-freeze cosine-encoder-lr plateau-encoder-lr-batch32; do
    for name in castelli carbon24 jarvis; do
        out=$here/small/$name-$config.json
        [ -f "$out" ] || jobs+=("python $here/study.py --task ../shared/data/${tasks[$name]} --config $config --out $out")
    done
done
printf '%s\n' "${jobs[@]}" | xargs -P 2 -I{} bash -c "{}" 2>&1 | grep -v Warning | tee -a $here/study.log
