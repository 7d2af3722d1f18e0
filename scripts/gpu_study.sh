#!/usr/bin/env bash
# Reference run on one NVIDIA H200 (torch preinstalled, no internet): preprocess the CCP data at 496x304,
# train unet, mobilenetv3, resnet50 and resnet101 from scratch for 30 epochs each with the project's recipe
# (Adam at 1e-3 for every parameter, --augment flip, bf16 autocast + channels_last; four train.py processes
# sharing the GPU, data held on the GPU), measure training throughput and the U-net's model FLOPs
# utilisation, and write results/summary.md, readme_imgs/graph.png and results/prediction_<model>.png.
# The whole run is budgeted at 9 minutes.
#
#   scripts/gpu_study.sh [--data DIR] [--epochs N] [--parallel N] [...]   (python -m scripts.study --help)
#   scripts/gpu_study.sh --dry-run      # or DRY_RUN=1: every step at toy size on the CPU, 1 epoch
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
"${PYTHON:-python3}" -m scripts.study --profile gpu "$@"
