#!/usr/bin/env bash
# Train on a lent GPU machine that is reached through a size-limited copy of the repository
# (no network there, no PyAV, its own torch): the data travel in .gpu/, ignored by git.
#
#   bash tools/gpu_session.sh prepare [BUDGET_MIB]     # here: photos, clip frames and wheels into .gpu/
#   bash tools/gpu_session.sh train MINUTES [WHAT]     # there, with .gpu carried; WHAT: both (default), image, video
#
# `prepare` fills what the copy has room for (BUDGET_MIB, default 62, minus the tracked files):
# the clips' first 32 frames as WebP (quality 95), then as many photos as fit, lossless, seeded.
# `train` runs the image and the video model side by side on the one GPU for MINUTES (time
# schedule: the learning rate decays to its floor at the end), from the shipped weights or from
# IMAGE_INIT / VIDEO_INIT (DEVICE=cpu tries the plumbing here), and leaves fp16 weights with their training-state JSON and the logs in
# $OUT (or ./gpu-out). Evaluate and ship them here: tools/bench_image.py, tools/video_rd_cost.py,
# tools/ship_weights.py.
set -euo pipefail
cd "$(dirname "$0")/.."
GPU=.gpu
PY=${PYTHON:-python3}

prepare() {
  local budget=${1:-62}
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
  rm -rf "$GPU" && mkdir -p "$GPU/whl"
  local version
  version=$($PY -c "import importlib.metadata as m; print(m.version('constriction'))")
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$GPU/whl" "constriction==$version"
  $PY tools/export_frames.py ../shared/data/video/train -o "$GPU/frames" --max-frames 32 --quality 95
  local tracked used left
  tracked=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
  used=$(du -sb "$GPU" | cut -f1)
  left=$(( (budget * 1048576 - tracked - used) / 1000000 ))
  if (( left < 4 )); then
    echo "gpu_session: only ${left} MB left for photos beside ${tracked} bytes of tracked files" >&2
    echo "  (the largest: $(git ls-files -z | xargs -0 du -b | sort -n | tail -3 | cut -f2 | tr '\n' ' '))" >&2
    exit 1
  fi
  $PY tools/pack_photos.py ../shared/data/images/train -o "$GPU/photos" --max-mb "$left" --seed 25
  du -sh "$GPU"/*
}

pack() {  # fp16 weights beside their JSON: half the bytes to carry back
  $PY - "$1" "$2" <<'EOF'
import shutil, sys
from pathlib import Path
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
with safe_open(str(src), "pt") as f:
    meta = f.metadata()
tensors = {k: v.half() if v.dtype == torch.float32 else v for k, v in load_file(src).items()}
save_file(tensors, str(dst), metadata=meta)
if src.with_suffix(".json").exists():
    shutil.copy(src.with_suffix(".json"), dst.with_suffix(".json"))
EOF
}

train() {
  local minutes=${1:?minutes}
  local what=${2:-both}
  local out=${OUT:-gpu-out}
  mkdir -p "$out" /tmp/gpu
  if ! $PY -c "import constriction" 2>/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$GPU"/whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  export PYTHONUNBUFFERED=1
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
  local device=${DEVICE:-cuda} image_init video_init
  image_init=${IMAGE_INIT:-$($PY -c "from tngvideo.image.registry import weights_path; print(weights_path())")}
  video_init=${VIDEO_INIT:-$($PY -c "from tngvideo.video.registry import WEIGHTS_DIR as d, default_video_model as m; print(d / (m() + '.safetensors'))")}
  local secs=$(( minutes * 60 + 120 ))  # the runs stop themselves at MINUTES; this only guards a hang
  local pids=()
  if [[ $what == both || $what == image ]]; then
    timeout -s TERM "$secs" $PY tools/train_image.py --device "$device" --minutes "$minutes" \
      --init "$image_init" \
      --out /tmp/gpu/image.safetensors --log-file "$out/image.log.jsonl" \
      --set "data=[$GPU/photos]" --set crop=256 --set batch=32 --set schedule_by=time \
      --set peak_lr="${IMAGE_LR:-0.0001}" --set compile=false --set eval_every=1000000 \
      > "$out/image.out" 2>&1 &
    pids+=($!)
  fi
  if [[ $what == both || $what == video ]]; then
    timeout -s TERM "$secs" $PY tools/train_video.py --stage joint --device "$device" --minutes "$minutes" \
      --init "$video_init" \
      --out /tmp/gpu/video.safetensors --records "$out/video.record.json" ${VIDEO_ARGS:-} \
      --set "photos=[$GPU/photos]" --set "clips=[$GPU/frames]" --set crop=256 --set batch=16 --set rollout=3 \
      --set synthetic_fraction=0.3 --set schedule_by=time --set peak_lr="${VIDEO_LR:-0.0001}" --set warmup_steps=50 \
      > "$out/video.out" 2>&1 &
    pids+=($!)
  fi
  local rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=$?; done
  for m in image video; do
    if [[ -f /tmp/gpu/$m.safetensors ]]; then pack "/tmp/gpu/$m.safetensors" "$out/$m.safetensors"; fi
    if [[ -f /tmp/gpu/$m.log.jsonl ]]; then cp "/tmp/gpu/$m.log.jsonl" "$out/"; fi
    if [[ -f $out/$m.out ]]; then tail -c 2000 "$out/$m.out" | tr '\r' '\n' | tail -3; fi
  done
  ls -la "$out"
  return $rc
}

case ${1:-} in
  prepare) shift; prepare "$@" ;;
  train) shift; train "$@" ;;
  *) echo "usage: $0 prepare [BUDGET_MIB] | train MINUTES [both|image|video]" >&2; exit 2 ;;
esac
