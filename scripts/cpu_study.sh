#!/usr/bin/env bash
# Reference run for a machine without a GPU (2 cores): preprocess the CCP data at 240x144 and train from
# scratch with the project's recipe (Adam at 1e-3, poly schedule, cross-entropy, flips, bf16 where the CPU has
# it), two runs at a time with one thread each, every run with the same wall-clock limit fitted so that the
# whole study takes --budget-minutes (120) or set with --time-limit-minutes: the four models (U-net of base
# width 32) and the U-net ablations (--lr-schedule plateau, --loss ce+jaccard, base widths 16 and 24). Then the
# best run's flip-TTA gain and its garment detection on image-level tags (--tags-data, default --data).
# Writes results/cpu/summary.md and readme_imgs/graph_cpu.png; --resume continues an interrupted study.
#
#   scripts/cpu_study.sh [--data DIR] [--epochs N] [--budget-minutes M] [...]   (python -m scripts.study --help)
#   scripts/cpu_study.sh --dry-run      # or DRY_RUN=1: every step at toy size, 1 epoch
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" -m scripts.study --profile cpu "$@"
