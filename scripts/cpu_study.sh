#!/usr/bin/env bash
# Reference run for a machine without a GPU (2 cores): preprocess the CCP data at 240x144 and train all
# four models from scratch with the project's recipe (Adam at 1e-3, augment full, bf16 where the CPU has it),
# two runs at a time with one thread each: the U-net (base width 32) for 25 epochs, the same U-net with
# --augment flip as an ablation, then each DeepLabV3 with the same wall-clock limit, fitted so that the whole
# study takes --budget-minutes (120). Writes results/cpu/summary.md and readme_imgs/graph_cpu.png.
#
#   scripts/cpu_study.sh [--data DIR] [--epochs N] [--budget-minutes M] [...]   (python -m scripts.study --help)
#   scripts/cpu_study.sh --dry-run      # or DRY_RUN=1: every step at toy size, 1 epoch
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" -m scripts.study --profile cpu "$@"
