#!/usr/bin/env bash
# Train the whole AV-Link stack on SynthHits v1 (flash-marked clips; v2: synthhits_v2_train.sh) on a CPU: tiny text-to-audio and text-to-video backbones,
# then the V2A and A2V Fusion Blocks. Usage: bash examples/synthhits_train.sh [WORK_DIR] [STEPS]
# (defaults: synthhits_run, 3000 steps per model). Times for a 2-core CPU are in docs/synthhits.md.
set -euo pipefail
WORK=${1:-synthhits_run}
STEPS=${2:-3000}
PY=${PYTHON:-python}
mkdir -p "$WORK"
COMMON=(--cache_dir "$WORK/cache" --clip_seconds 2.0 --train_batch_size 16 --max_train_steps "$STEPS"
        --learning_rate 5e-4 --lr_warmup_steps 200 --checkpointing_steps 500 --checkpoints_total_limit 1 --report_to tensorboard)

[ -f "$WORK/train/metadata.jsonl" ] || av-link make-synthetic --version 1 --out "$WORK/train" --num-clips 600 --seed 1

run() { echo "== $1"; shift; /usr/bin/time -f "   wall %e s" "$@"; }
run "text-to-audio backbone" $PY examples/train_backbone.py --modality audio --data_dir "$WORK/train" --output_dir "$WORK/t2a" \
    --text_encoder tiny --preset tiny --model_config '{"patch_size": 2, "hidden_size": 192, "mlp_dim": 384, "num_layers": 6}' \
    "${COMMON[@]}" --resume_from_checkpoint latest
run "text-to-video backbone" $PY examples/train_backbone.py --modality video --data_dir "$WORK/train" --output_dir "$WORK/t2v" \
    --text_encoder tiny --preset tiny --fps 8 --height 16 --width 16 \
    --model_config '{"patch_size": [1, 4, 4], "hidden_size": 128, "mlp_dim": 256, "num_layers": 4}' \
    "${COMMON[@]}" --resume_from_checkpoint latest
for task in v2a a2v; do
  run "fusion blocks ($task)" $PY examples/train_fusion.py --task $task --audio_model "$WORK/t2a" --video_model "$WORK/t2v" \
      --data_dir "$WORK/train" --output_dir "$WORK/$task" --preset tiny \
      --adapter_config '{"hidden_size": 128, "mlp_dim": 256, "num_blocks": 4, "time_embed_dim": 128}' \
      "${COMMON[@]}" --resume_from_checkpoint latest
done
