#!/usr/bin/env bash
# Train the whole AV-Link stack on SynthHits v2 on a CPU, one resumable stage at a time:
#   bash examples/synthhits_v2_train.sh WORK_DIR [STAGE ...]
# Stages (default: all, in order): data t2a t2v v2a a2v. Each stage skips itself when its output is complete
# and otherwise resumes from its latest checkpoint, so rerunning the same command after an interruption
# picks up where it stopped. STEPS (default 3000) sets the steps per model. Times: docs/synthhits.md.
#
# Model choices: video at 12 fps, 16x16 px, 4x4 patches (16 tokens per frame). 12 fps puts 2.4 frames
# between the closest impacts of the OOD split (0.2 s) and keeps a frame within 42 ms of any instant;
# every source rate (8-30 fps) reaches it through the exposure-weighted box filter of
# av_link.utils.video_ops, which the dataset and the pipelines share.
set -euo pipefail
WORK=${1:?usage: synthhits_v2_train.sh WORK_DIR [data|t2a|t2v|v2a|a2v ...]}
shift
STAGES=${*:-data t2a t2v v2a a2v}
STEPS=${STEPS:-3000}
PY=${PYTHON:-python}
mkdir -p "$WORK"
COMMON=(--cache_dir "$WORK/cache" --clip_seconds 2.0 --train_batch_size 16 --max_train_steps "$STEPS"
        --learning_rate 5e-4 --lr_warmup_steps 200 --checkpointing_steps 250 --checkpoints_total_limit 1
        --report_to tensorboard --resume_from_checkpoint latest)

run() {  # run NAME OUTPUT_DIR CMD...: skip when OUTPUT_DIR holds a finished pipeline
  local name=$1 out=$2; shift 2
  if [ -f "$out/model_index.json" ]; then echo "== $name: done ($out)"; return; fi
  echo "== $name"; /usr/bin/time -f "   wall %e s" "$@"
}
for stage in $STAGES; do
  case $stage in
    data)
      [ -f "$WORK/train/metadata.jsonl" ] || av-link make-synthetic --out "$WORK/train" --num-clips 800 --split train ;;
    t2a)
      run "text-to-audio backbone" "$WORK/t2a" $PY examples/train_backbone.py --modality audio --data_dir "$WORK/train" \
          --output_dir "$WORK/t2a" --text_encoder tiny --preset tiny \
          --model_config '{"patch_size": 2, "hidden_size": 192, "mlp_dim": 384, "num_layers": 6}' "${COMMON[@]}" ;;
    t2v)
      run "text-to-video backbone" "$WORK/t2v" $PY examples/train_backbone.py --modality video --data_dir "$WORK/train" \
          --output_dir "$WORK/t2v" --text_encoder tiny --preset tiny --fps 12 --height 16 --width 16 \
          --model_config '{"patch_size": [1, 4, 4], "hidden_size": 128, "mlp_dim": 256, "num_layers": 4}' "${COMMON[@]}" ;;
    v2a|a2v)
      run "fusion blocks ($stage)" "$WORK/$stage" $PY examples/train_fusion.py --task "$stage" --audio_model "$WORK/t2a" \
          --video_model "$WORK/t2v" --data_dir "$WORK/train" --output_dir "$WORK/$stage" --preset tiny \
          --adapter_config '{"hidden_size": 128, "mlp_dim": 256, "num_blocks": 4, "time_embed_dim": 128}' "${COMMON[@]}" ;;
    *) echo "unknown stage $stage (data, t2a, t2v, v2a, a2v)" >&2; exit 2 ;;
  esac
done
