#!/usr/bin/env bash
# Seconds per epoch of `python -m pretraining.run` (crystal-twins, the first 3,000 mp_cgcnn structures, 2 epochs)
# with 1 and 2 torch threads and with the default (--threads not given), on a quiet machine and beside another
# process that keeps one core busy. Run from the repo root on the machine to measure; writes eval/threads/pretraining.log.
set -euo pipefail
out=$(mktemp -d)
log=eval/threads/pretraining.log
: > "$log"
run() {  # label, extra options
    rm -rf "$out/run"
    python -m pretraining.run --method crystal-twins --data ../shared/data/mp_cgcnn.jsonl.gz --limit 3000 --epochs 2 \
        --out "$out/run" --no-progress "${@:2}" 2> "$out/stderr"
    threads=$(grep -o "torch threads per process: [0-9]*" "$out/stderr" | grep -o "[0-9]*$")
    python - "$1" "$threads" "$out/run/training/metrics.jsonl" >> "$log" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[3])]
print(f"{sys.argv[1]}: threads {sys.argv[2]}, seconds per epoch " + ", ".join(f"{r['seconds']:.1f}" for r in rows)
      + ", structures/s " + ", ".join(f"{r['structures_per_second']:.0f}" for r in rows))
PY
}
python -m pretraining.run --method crystal-twins --data ../shared/data/mp_cgcnn.jsonl.gz --limit 3000 --epochs 1 \
    --out "$out/warm" --no-progress 2> /dev/null  # builds and caches the graphs first
for threads in 1 2; do run "quiet" --threads $threads; done
run "quiet, default"
python -c "while True: pass" & spinner=$!
sleep 5
for threads in 1 2; do run "one core busy" --threads $threads; done
run "one core busy, default"
kill $spinner
cat "$log"
