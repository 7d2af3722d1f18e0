#!/usr/bin/env bash
# The GPU study (recipes/studies/gpu.json) on one NVIDIA H200 (torch preinstalled, no internet): the CCP data
# cached at 496x304, the recipes recipes/gpu-*.json (unet, mobilenetv3, resnet50 and resnet101 from scratch,
# 30 epochs each, Adam at 1e-3 for every parameter, plateau, flips, bf16 autocast + channels_last), four
# train.py processes sharing the GPU with the data on it; training still running 8 minutes after the start is
# stopped, leaving a minute of the 9-minute budget to the report: results/gpu/summary.md (the tables, images/s
# and model FLOPs utilisation), readme_imgs/graph.png and results/gpu/prediction_<recipe>.png. One seed: its
# tables show the numbers and give no verdict.
#
#   scripts/gpu_study.sh [--data DIR] [--seeds 0 1 2] [--resume]   (python -m scripts.study --help)
#   scripts/gpu_study.sh --dry-run      # or DRY_RUN=1: every step at toy size on the CPU, 1 epoch, 3 seeds
#
# The data folder (default data/) holds photos/, annotations/pixel-level/ and label_list.mat, or the
# Kaggle layout. The full-size data (68 MiB) is more than a remote machine's transfer may carry: make a
# copy at the training size first (54.5 MiB, identical labels, photos re-encoded as JPEG quality 95):
#   python -m scripts.shrink_dataset --data data --out data/ccp_496x304
#   scripts/gpu_study.sh --data data/ccp_496x304
# When OUT names a folder, study.log, summary.md, graph.png and results.tar.gz go there.
# PYTHON picks the interpreter (default: python3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONUNBUFFERED=1
if [[ -n "${OUT:-}" ]]; then
    mkdir -p "$OUT"
    exec > >(tee "$OUT/study.log") 2>&1
fi
"${PYTHON:-python3}" -m scripts.study recipes/studies/gpu.json "$@"
