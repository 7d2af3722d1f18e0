#!/usr/bin/env bash
# The CPU study (recipes/studies/cpu.json) on 2 cores: the CCP data cached at 240x144, the eight recipes
# recipes/cpu-*.json (the U-net of base width 16 with plateau, cross-entropy and flips, one change each of
# poly, ce+jaccard, base width 24 and 32, and the three DeepLabV3 models, all from scratch) at seeds 0, 1 and
# 2, two runs at a time with one thread each, every run limited to the same 10 training minutes. Then the
# tables (val chooses, test reports, seeded verdicts), results/cpu/summary.md and readme_imgs/graph_cpu.png.
#
#   scripts/cpu_study.sh [--data DIR] [--seeds 0 1 2] [--time-limit-minutes M] [--resume]   (python -m scripts.study --help)
#   scripts/cpu_study.sh --dry-run      # or DRY_RUN=1: every step at toy size, 1 epoch, 3 seeds
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" -m scripts.study recipes/studies/cpu.json "$@"
