#!/usr/bin/env bash
# Reference run for a machine without a GPU (2 cores): preprocess the CCP data at 240x144 and train all
# four models from scratch (Adam at 1e-3, bf16 where the CPU has it, --augment full), two runs at a time with
# one thread each: the U-net (base width 32) for 25 epochs, the same U-net with --augment flip as the
# ablation (the one that made flip train.py's default), then each DeepLabV3 with the same wall-clock limit,
# fitted so that the whole study takes --budget-minutes (120) or set with --time-limit-minutes.
# Writes results/cpu/summary.md and readme_imgs/graph_cpu.png; --resume continues an interrupted study.
#
#   scripts/cpu_study.sh [--data DIR] [--epochs N] [--budget-minutes M] [...]   (python -m scripts.study --help)
#   scripts/cpu_study.sh --dry-run      # or DRY_RUN=1: every step at toy size, 1 epoch
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" -m scripts.study --profile cpu "$@"
