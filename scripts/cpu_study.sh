#!/usr/bin/env bash
# Reference run for a machine without a GPU (2 cores): preprocess the CCP data at 240x144 and train a
# U-net of base width 32 from scratch for as many epochs as fit about 30 minutes, measured before it
# starts; writes results/cpu/summary.md, readme_imgs/graph_cpu.png and readme_imgs/prediction_unet_cpu.png,
# all labelled as a CPU run. From-scratch DeepLabV3 does not beat the all-background baseline in that time.
#
#   scripts/cpu_study.sh [--data DIR] [--epochs N] [--budget-minutes M] [...]   (python -m scripts.study --help)
#   scripts/cpu_study.sh --dry-run      # or DRY_RUN=1: every step at toy size, 1 epoch
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" -m scripts.study --profile cpu "$@"
