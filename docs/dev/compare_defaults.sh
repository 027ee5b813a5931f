#!/bin/sh
# The table of issue 18: the spec's training defaults ("new") against the pre-wave-2 flags
# ("old": --schedule accuracy --no-standardize --damping 1) on every data set, under warm and
# scratch retraining, top_fisher, 20% noise, τ 0.2. Seeds 0-4 report; 200-209 chose the
# defaults (docs/results.md, "Training defaults per retraining mode"). Any set may be added:
# wave2, or SCHEDULE/std|raw/DAMPING such as accuracy/std/10.
#
#   SEEDS=0,1,2,3,4 OUT=results/compare sh docs/dev/compare_defaults.sh
set -e
SEEDS=${SEEDS:-0,1,2,3,4}
SETS=${SETS:-old,new}
OUT=${OUT:-results/compare_defaults}
PY=${PY:-.venv/bin/python}
run() {
    name=$1; shift
    $PY -m cincer_service.cli simulate --compare-defaults "$SETS" --mode warm,scratch \
        --seeds "$SEEDS" --out "$OUT/$name" "$@"
}
run breast --dataset breast
run digits --dataset digits
run wine --dataset wine --noise-type structured --bootstrap 50 --iterations 60
run intents --dataset intents
