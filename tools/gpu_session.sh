#!/usr/bin/env bash
# Train on a lent GPU machine that is reached through a size-limited copy of the repository
# (64 MiB with the tracked files; no network there, no PyAV, its own torch): the data travel
# in .gpu/, ignored by git.
#
#   bash tools/gpu_session.sh prepare [BUDGET_MIB]   # here: packed clips, packed photos and wheels into .gpu/
#   bash tools/gpu_session.sh train MINUTES [WHAT]   # there, with .gpu carried; WHAT: both (default), image, video
#   bash tools/gpu_session.sh rehearse               # here: the whole thing on the CPU, without PyAV, twice
#   bash tools/gpu_session.sh speed                  # there: tools/gpu_speed.py run (after its prepare here)
#
# `prepare` fills what the copy has room for (BUDGET_MIB, default 63, minus the tracked files and
# .gpu/speed, the speed check's frames, which it keeps: make them first):
# half as training clips in high-quality H.264 4:4:4 (tools/pack_clips.py; the held-out clips of
# configs/video_finetune_train2.yaml stay out), half as photos in JPEG 4:4:4 q95
# (tools/pack_photos.py); both print the PSNR of the packing against the sources.
# `train` runs the image and the video model side by side on the one GPU and ends everything,
# data loading included, MINUTES after it starts (the learning rate decays to its floor by
# then). The data live in GPU memory, each batch is sized to 40% of it, fp16 weights are saved
# every 2 minutes and at the end, and then split into parts under 16 MiB in $OUT (or
# ./gpu-out) beside the training states and logs: 8 files, the most that come back.
#   bash tools/gpu_session.sh join DIR               # here: the parts back into DIR/image.safetensors, video...
# Resume a second call from the first one's weights: join them, copy them with their JSON into
# .gpu/resume/ and set IMAGE_INIT=.gpu/resume/image.safetensors VIDEO_INIT=.gpu/resume/video.safetensors.
# VIDEO_PLAN=conditional converts the video model to a conditional coder (prediction and temporal
# motion contexts, zero-initialised), trains the contexts alone for the first half of the time
# (VIDEO_CTX_LR, default 3e-4) and then everything (VIDEO_LR); VIDEO_ARGS passes more to the video run.
# DEVICE=cpu (with IMAGE_BATCH, VIDEO_BATCH, CROP) tries the plumbing here; `rehearse` does that.
# Record a run's throughput: python tools/gpu_runs.py DIR --kind gpu --command "..." (results/gpu_runs.json).
# Evaluate and ship the weights here: tools/bench_image.py, tools/bench_video.py, tools/ship_weights.py.
set -euo pipefail
cd "$(dirname "$0")/.."
GPU=.gpu
PY=${PYTHON:-python3}
DATA=${TNGVIDEO_DATA:-../shared/data}  # the data root, as in tngvideo/datapaths.py
LIMIT=$((64 * 1048576))

prepare() {
  local budget=${1:-63}
  mkdir -p "$GPU" && find "$GPU" -mindepth 1 -maxdepth 1 ! -name speed -exec rm -rf {} + && mkdir -p "$GPU/whl"
  local version
  version=$($PY -c "import importlib.metadata as m; print(m.version('constriction'))")
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$GPU/whl" "constriction==$version"
  local tracked used left
  tracked=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
  used=$(du -sb "$GPU" | cut -f1)
  left=$(( (budget * 1048576 - tracked - used) / 1000 ))  # kB
  if (( left < 4000 )); then
    echo "gpu_session: only ${left} kB left for data beside ${tracked} bytes of tracked files" >&2
    echo "  (the largest: $(git ls-files -z | xargs -0 du -b | sort -n | tail -3 | cut -f2 | tr '\n' ' '))" >&2
    exit 1
  fi
  local clips_mb photos_mb
  clips_mb=$(awk -v k="$left" 'BEGIN { printf "%.2f", k / 2000 }')
  $PY tools/pack_clips.py --config configs/video_finetune_train2.yaml -o "$GPU/clips" --max-mb "$clips_mb" \
    ${CLIP_ARGS:-}
  used=$(du -sb "$GPU" | cut -f1)
  photos_mb=$(awk -v b="$(( budget * 1048576 - tracked - used ))" 'BEGIN { printf "%.2f", b / 1e6 - 0.2 }')
  $PY tools/pack_photos.py "$DATA/images/train" -o "$GPU/photos" --max-mb "$photos_mb" --quality 95 --seed 25
  du -sh "$GPU"/*
  echo "gpu_session: $(( (tracked + $(du -sb "$GPU" | cut -f1)) / 1048576 )) MiB travel of the $((LIMIT / 1048576)) MiB allowed"
}

deps() {  # there: this checkout's package (not installed on that machine) and constriction from the carried
  # wheel; checked as a tools/ script imports it (-P: without the current directory on the path)
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
  if ! $PY -c "import constriction" 2>/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$GPU"/whl/*.whl
    export PYTHONPATH=/tmp/site:$PYTHONPATH
  fi
  $PY -P -c "import pathlib, tngvideo; p = pathlib.Path(tngvideo.__file__).resolve()
assert p.is_relative_to(pathlib.Path.cwd().resolve()), f'tngvideo imported from {p}, not from this checkout'"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
}

speed() {  # there: tools/gpu_speed.py run (decode and encode speed, pixel identity with the CPU); prepare it here first
  [[ -f $GPU/speed/meta.json ]] || { echo "gpu_session: no $GPU/speed (python tools/gpu_speed.py prepare)" >&2; exit 1; }
  deps
  $PY tools/gpu_speed.py run "$@"
}

train() {
  local minutes=${1:?minutes}
  local what=${2:-both}
  local out=${OUT:-gpu-out} work=/tmp/gpu-train
  local until=$(( $(date +%s) + minutes * 60 ))  # training ends by then, loading and saving included
  mkdir -p "$out" && rm -rf "$work" && mkdir -p "$work"
  deps
  local device=${DEVICE:-cuda} image_init video_init
  image_init=${IMAGE_INIT:-$($PY -c "from tngvideo.image.registry import weights_path; print(weights_path())")}
  video_init=${VIDEO_INIT:-$($PY -c "from tngvideo.video.registry import WEIGHTS_DIR as d, default_video_model as m; print(d / (m() + '.safetensors'))")}
  local secs=$(( minutes * 60 + 60 ))  # the runs stop themselves at --until; this only guards a hang
  local common=(--device "$device" --minutes "$minutes" --until "$until" --half)
  local pids=()
  if [[ $what == both || $what == image ]]; then
    timeout -s TERM "$secs" $PY tools/train_image.py "${common[@]}" --init "$image_init" \
      --out "$work/image.safetensors" --log-file "$out/image.log.jsonl" \
      --set "data=[$GPU/photos]" --set "eval_images=[]" --set crop="${CROP:-256}" --set batch="${IMAGE_BATCH:-0}" --set schedule_by=time \
      --set peak_lr="${IMAGE_LR:-0.0001}" --set compile="${IMAGE_COMPILE:-false}" --set eval_every=1000000 \
      --set save_every=1000000 --set save_every_minutes=2 --set warmup_steps=20 ${IMAGE_ARGS:-} \
      > "$work/image.out" 2>&1 &
    pids+=($!)
  fi
  if [[ $what == both || $what == video ]]; then
    video_run() {  # video_run INIT UNTIL LR ARGS...: one video training run into $work/video.safetensors
      local init=$1 stop=$2 lr=$3
      shift 3
      timeout -s TERM "$secs" $PY tools/train_video.py --stage joint --device "$device" --minutes "$minutes" \
        --until "$stop" --half --init "$init" --out "$work/video.safetensors" --records none \
        --set "photos=[$GPU/photos]" --set "clips=[$GPU/clips]" --set crop="${CROP:-256}" --set batch="${VIDEO_BATCH:-0}" \
        --set rollout=4 --set synthetic_fraction=0.25 --set schedule_by=time --set peak_lr="$lr" \
        --set warmup_steps=20 --set save_every=1000000 --set save_every_minutes=2 "$@" ${VIDEO_ARGS:-}
    }
    if [[ ${VIDEO_PLAN:-joint} == conditional ]]; then  # the contexts alone for half the time, then everything
      local half=$(( $(date +%s) + (until - $(date +%s)) / 2 ))
      ( video_run "$video_init" "$half" "${VIDEO_CTX_LR:-0.0003}" --conditional --motion-context --stage conditional \
        && video_run "$work/video.safetensors" "$until" "${VIDEO_LR:-0.0001}" ) > "$work/video.out" 2>&1 &
    else
      video_run "$video_init" "$until" "${VIDEO_LR:-0.0001}" > "$work/video.out" 2>&1 &
    fi
    pids+=($!)
  fi
  local rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=$?; done
  for m in image video; do
    if [[ -f $work/$m.safetensors ]]; then
      split -b 15m -d -a 1 "$work/$m.safetensors" "$out/$m.safetensors."
      cp "$work/$m.json" "$out/"
      mv "$work/$m.log.jsonl" "$out/" 2>/dev/null || true
    fi
    if [[ -f $work/$m.out ]]; then tail -c 3000 "$work/$m.out" | tr '\r' '\n' | grep -v '^$' | tail -4; fi
    if [[ -f $out/$m.log.jsonl ]]; then tail -1 "$out/$m.log.jsonl"; fi
  done
  ls -la "$out"
  return $rc
}

join() {  # the weights' parts that came back, joined (and the parts removed)
  local dir=${1:?folder}
  for m in image video; do
    if [[ -f $dir/$m.safetensors.0 ]]; then
      cat "$dir/$m.safetensors".? > "$dir/$m.safetensors.tmp" && mv "$dir/$m.safetensors.tmp" "$dir/$m.safetensors"
      rm -f "$dir/$m.safetensors".?
    fi
  done
}

rehearse() {  # the plumbing on this machine's CPU, as the GPU machine runs it: in a copy of the working
  # tree (where the installed package is not this copy's), no PyAV, two calls, resume
  [[ -d $GPU/clips && -d $GPU/photos ]] || prepare
  local home=$PWD tree=/tmp/gpu-rehearsal/tree noav=/tmp/gpu-rehearsal/noav
  local out1=/tmp/gpu-rehearsal/out1 out2=/tmp/gpu-rehearsal/out2
  rm -rf /tmp/gpu-rehearsal && mkdir -p "$tree" "$noav/av" "$out1" "$out2"
  git ls-files -z --cached --others --exclude-standard | xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' _ \
    | xargs -0 cp --parents -t "$tree" && cp -r "$GPU" "$tree/"
  cd "$tree"
  echo 'raise ImportError("no PyAV on the GPU machine")' > "$noav/av/__init__.py"
  local env=(env PYTHONPATH="$noav" DEVICE=cpu IMAGE_BATCH="${IMAGE_BATCH:-4}" VIDEO_BATCH="${VIDEO_BATCH:-2}"
             CROP="${CROP:-128}")
  "${env[@]}" OUT="$out1" bash "$0" train "${MINUTES:-2}"
  $PY - "$out1" "$LIMIT" <<'EOF'
import sys
from pathlib import Path
sizes = {f.name: f.stat().st_size for f in Path(sys.argv[1]).iterdir()}
assert len(sizes) <= 8 and max(sizes.values()) <= 16 * 1048576 and sum(sizes.values()) <= int(sys.argv[2]), sizes
print("what comes back:", sizes)
EOF
  join "$out1"
  mkdir -p "$GPU/resume"
  cp "$out1"/image.safetensors "$out1"/image.json "$out1"/video.safetensors "$out1"/video.json "$GPU/resume/"
  "${env[@]}" OUT="$out2" IMAGE_INIT="$GPU/resume/image.safetensors" VIDEO_INIT="$GPU/resume/video.safetensors" \
    bash "$0" train "${MINUTES:-2}"
  rm -rf "$GPU/resume"
  join "$out2"
  $PY - "$out1" "$out2" <<'EOF'
import json, sys
from pathlib import Path
from tngvideo.image.weights import load_weights
from tngvideo.video.weights import load_video_weights
out1, out2 = Path(sys.argv[1]), Path(sys.argv[2])
report = {}
for m, load in (("image", load_weights), ("video", load_video_weights)):
    a = json.loads((out1 / f"{m}.json").read_text())["training_state"]
    b = json.loads((out2 / f"{m}.json").read_text())["training_state"]
    load(out2 / f"{m}.safetensors")
    assert b["steps"] > a["steps"] > 0 and b["runs"] == a["runs"] + 1, (m, a, b)
    last = json.loads((out2 / f"{m}.log.jsonl").read_text().splitlines()[-1])
    report[m] = {"first_call_steps": a["steps"], "second_call_steps": b["steps"], **last}
print("rehearsal passed:", json.dumps(report))
EOF
  cd "$home"
  $PY tools/gpu_runs.py "$out2" --kind cpu-rehearsal --command "bash tools/gpu_session.sh rehearse" > /dev/null
  echo "recorded in results/gpu_runs.json"
}

case ${1:-} in
  prepare) shift; prepare "$@" ;;
  train) shift; train "$@" ;;
  speed) shift; speed "$@" ;;
  rehearse) shift; rehearse "$@" ;;
  join) shift; join "$@" ;;
  *) echo "usage: $0 prepare [BUDGET_MIB] | train MINUTES [both|image|video] | speed [--device D] | join DIR | rehearse" >&2
     exit 2 ;;
esac
