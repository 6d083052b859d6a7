#!/usr/bin/env bash
# Train the whole AV-Link stack on SynthHits v2 on a CPU, in resumable stages:
#   bash examples/synthhits_v2_train.sh WORK_DIR            # everything: data, then t2a | t2v, then v2a | a2v
#   bash examples/synthhits_v2_train.sh WORK_DIR t2v v2a    # only these stages, one after the other
# Stages: data t2a t2v v2a a2v v2a_ft a2v_ft (and students: the 8-step students of the two fine-tunes, only when
# named; python scripts/ship_synthhits_models.py WORK_DIR --students WORK_DIR/students --v2a_guidance_stop 0.3
# then ships all four). A stage whose pipeline folder is complete is skipped; otherwise
# it resumes from its latest checkpoint (every 250 steps), so rerunning the same command after an interruption
# picks up where it stopped. Without stage names, the two backbones train side by side and then the two
# Fusion Block sets, each followed by its fine-tune, one CPU thread per lane (the lanes are independent; on 2
# cores this halves the wall time, and single-threaded runs slow down gracefully when something else needs the
# CPU, where 2 threads per process thrash); once one lane has finished, the other takes both threads: a stage
# still running is stopped right after its next checkpoint and resumes from it on two (t2a beside the shorter t2v,
# v2a beside the shorter A2V lane), and a stage that starts then takes both at once (the V2A fine-tune: 1.06 s a
# step on one, 0.70 s on two, AMD EPYC with AVX2). The whole stack with one V2A fine-tune (V2A_FT_SEEDS=0): 1 h 47 min
# on that processor before stopped stages resumed on both threads, 60 min on a 2-core AVX-512 Xeon; the default four
# V2A fine-tune seeds and their validation add about 25 min on the Xeon (docs/synthhits.md).
# Logs: WORK_DIR/<stage>.log. Steps per model: T2A_STEPS (default 6000), T2V_STEPS (3000), V2A_STEPS (2000),
# A2V_STEPS (1500), V2A_FT_STEPS (600), A2V_FT_STEPS (400). The trained models are WORK_DIR/v2a_ft and
# WORK_DIR/a2v_ft (the models shipped in the package since session 22; scripts/ship_synthhits_models.py).
#
# Model choices: video at 12 fps, 16x16 px, 8x8 patches (4 tokens per frame; VIDEO_PATCH=4 gives 16) in a
# video backbone 192 wide (VIDEO_HIDDEN: at least a patch's 3 x 8 x 8 values, which it predicts). 12 fps puts 2.4
# frames between the closest impacts of the OOD split (0.2 s) and keeps every instant within 42 ms of a frame
# centre; every source rate (8-30 fps) reaches it through the exposure-weighted box filter of
# av_link.utils.video_ops, which the dataset and the pipelines share. The 8x8 patches quarter the video tokens
# (96 per 2 s clip instead of 384), which cuts the video backbone's and the Fusion Blocks' attention most: a
# symmetric V2A step 1.03 s instead of 2.21 s, a static A2V step 0.68 s instead of 1.96 s, t2v 1,383 s instead of
# 3,663 s (AMD EPYC, AVX2, one thread). The audio backbone keeps an EMA of its weights (decay 0.999; the saved
# model is the EMA). Times and results: docs/synthhits.md.
#
# Fusion Block choices: the generated modality's flow time is drawn from logit-normal(-2, 1), mostly noisy
# times, where nothing but the conditioning input can place the events (at the package default of -1 the
# blocks learned to help the audio model's prior and ignored when the motion happened); a learned per-head
# time-distance bias on the blocks' attention logits ("time_bias"), its slopes kept at their ALiBi-like start
# (--freeze_time_bias: learned, they stayed within 15% of it, and learning them costs a quarter of each CPU step);
# learning rate 1e-3.
#
# Fine-tunes (v2a_ft, a2v_ft: lr 3e-4 from the stage before): V2A lists the 8 fps clips three times
# (--repeat_fps 8=3; 8 fps is the rate furthest below the model's 12, where an impact is seen in fewest frames)
# and drops the video caption 60% of the time (it must not carry what the motion shows).
#
# Reinjection per direction: V2A_REINJECT (default both: the paper's symmetric Fusion Blocks) and A2V_REINJECT
# (default static: the blocks feed only the generated video backbone, so the audio backbone's features are static
# and no backward pass runs through it); REINJECT sets both. On one pair of backbones, V2A timed 8 fps clips and
# inferred the kind better with symmetric blocks (0.920 / 0.775 against 0.830 / 0.700), while A2V timed contacts
# far better with static ones (0.974 against the shipped 0.861, id); docs/synthhits.md.
set -euo pipefail
WORK=${1:?usage: synthhits_v2_train.sh WORK_DIR [data|t2a|t2v|v2a|a2v ...]}
shift
T2A_STEPS=${T2A_STEPS:-6000}
T2V_STEPS=${T2V_STEPS:-3000}
V2A_STEPS=${V2A_STEPS:-2000}
A2V_STEPS=${A2V_STEPS:-1500}
V2A_FT_STEPS=${V2A_FT_STEPS:-600}
A2V_FT_STEPS=${A2V_FT_STEPS:-400}
# Reinjection per direction (both: the paper's symmetric Fusion Blocks; static: they feed only the generated backbone);
# REINJECT sets both directions at once.
V2A_REINJECT=${V2A_REINJECT:-${REINJECT:-both}}
A2V_REINJECT=${A2V_REINJECT:-${REINJECT:-static}}
for name in V2A_REINJECT A2V_REINJECT; do
  case ${!name} in both|static) ;; *) echo "$name (or REINJECT) must be both or static, got ${!name}" >&2; exit 2 ;; esac
done
AUDIO_EMA=${AUDIO_EMA:-1}  # 1: the audio backbone keeps (and saves) an EMA of its weights; 0: the shipped models' recipe
case $AUDIO_EMA in 0) EMA_ARGS=() ;; 1) EMA_ARGS=(--use_ema) ;; *) echo "AUDIO_EMA must be 0 or 1, got $AUDIO_EMA" >&2; exit 2 ;; esac
# The V2A fine-tune's seed (clip order, noise, times) moves its kind accuracy by about a tenth, more than any recipe
# change tried (docs/synthhits.md). So with several V2A_FT_SEEDS, each fine-tune trains into WORK/v2a_ft_seed<N>,
# and the one that infers the kind from the picture best, with empty prompts on a validation split of its own
# (WORK/val: 40 id clips, seed VAL_SEED, neither training data nor the benchmark's split), is copied to WORK/v2a_ft
# (examples/select_v2a_finetune.py; about 4 min per seed on 2 threads, 3 min to score it). FT_SEED sets the A2V
# fine-tune's seed, and the V2A one's alone when V2A_FT_SEEDS is not given.
V2A_FT_SEEDS=${V2A_FT_SEEDS:-${FT_SEED:-0 1 2 3}}
FT_SEED=${FT_SEED:-0}
VAL_SEED=${VAL_SEED:-40000000}
# The shipped V2A guides the first 30% of its steps (docs/synthhits.md): its seeds are judged, and its student
# distilled, sampling as it will ship (scripts/ship_synthhits_models.py --v2a_guidance_stop 0.3).
V2A_GUIDANCE_STOP=0.3
for seed in $FT_SEED $V2A_FT_SEEDS $VAL_SEED; do
  [[ $seed =~ ^[0-9]+$ ]] || { echo "FT_SEED, V2A_FT_SEEDS and VAL_SEED take non-negative integers, got $seed" >&2; exit 2; }
done
[ -n "${V2A_FT_SEEDS// /}" ] || { echo "V2A_FT_SEEDS is empty" >&2; exit 2; }
FUSION_EMA=${FUSION_EMA:-0}  # 1: the Fusion Blocks' stages (and fine-tunes) keep and save an EMA of their weights
case $FUSION_EMA in 0) FUSION_EMA_ARGS=() ;; 1) FUSION_EMA_ARGS=(--use_ema) ;; *) echo "FUSION_EMA must be 0 or 1, got $FUSION_EMA" >&2; exit 2 ;; esac
AUDIO_HIDDEN=${AUDIO_HIDDEN:-192}  # the audio backbone's width (a token is 2 mel frames x 80 bands = 160 values)
# Against rippling rings (docs/synthhits.md): AUDIO_CONV_KERNEL (odd k >= 3) puts a depthwise convolution over k
# neighbouring tokens in every audio block's MLP (1: plain MLPs); ENERGY_SMOOTHNESS weights the loss on the
# frame-to-frame change of the clean mel's band-mean error (0: off).
AUDIO_CONV_KERNEL=${AUDIO_CONV_KERNEL:-1}
ENERGY_SMOOTHNESS=${ENERGY_SMOOTHNESS:-0}
VIDEO_PATCH=${VIDEO_PATCH:-8}
# The video backbone predicts a patch's 3 x p x p values from its hidden state: narrower than that, it cannot
# predict the noise's other directions (its loss stalls at their share: 0.41 at patch 8 with 128 wide, against 0.03
# at patch 4), so the width is at least the patch's size.
VIDEO_HIDDEN=${VIDEO_HIDDEN:-$(( 3 * VIDEO_PATCH * VIDEO_PATCH > 128 ? 3 * VIDEO_PATCH * VIDEO_PATCH : 128 ))}
PY=${PYTHON:-python}
POLL_SECONDS=${POLL_SECONDS:-2}  # how often a lane looks whether the other one has finished
# Every stage logs to TensorBoard: say so now, not after the data stage has run.
$PY -c "import tensorboard" 2>/dev/null || { echo "the training stages need the train extras: pip install -e '.[train]'" >&2; exit 2; }
mkdir -p "$WORK"
COMMON=(--cache_dir "$WORK/cache" --clip_seconds 2.0 --train_batch_size 16 --lr_warmup_steps 200 --checkpointing_steps 250 --checkpoints_total_limit 1
        --report_to tensorboard --resume_from_checkpoint latest)

stage() {  # stage NAME: train one model unless its pipeline folder is complete
  local out="$WORK/$1"
  if [ "$1" != data ] && [ -f "$out/model_index.json" ]; then echo "== $1: done ($out)"; return; fi
  echo "== $1"
  case $1 in
    data)
      [ -f "$WORK/train/metadata.jsonl" ] || av-link make-synthetic --out "$WORK/train" --num-clips 800 --split train --quiet ;;
    t2a)
      /usr/bin/time -f "   $1 wall %e s" $PY examples/train_backbone.py --modality audio --data_dir "$WORK/train" \
          --output_dir "$out" --text_encoder tiny --preset tiny \
          --model_config '{"patch_size": 2, "hidden_size": '"$AUDIO_HIDDEN"', "mlp_dim": '"$((2 * AUDIO_HIDDEN))"', "num_layers": 6, "mlp_conv_kernel": '"$AUDIO_CONV_KERNEL"'}' \
          --energy_smoothness "$ENERGY_SMOOTHNESS" --max_train_steps "$T2A_STEPS" --learning_rate 5e-4 "${EMA_ARGS[@]}" "${COMMON[@]}" ;;
    t2v)
      /usr/bin/time -f "   $1 wall %e s" $PY examples/train_backbone.py --modality video --data_dir "$WORK/train" \
          --output_dir "$out" --text_encoder tiny --preset tiny --fps 12 --height 16 --width 16 \
          --model_config '{"patch_size": [1, '"$VIDEO_PATCH"', '"$VIDEO_PATCH"'], "hidden_size": '"$VIDEO_HIDDEN"', "mlp_dim": '"$((2 * VIDEO_HIDDEN))"', "num_layers": 4}' \
          --max_train_steps "$T2V_STEPS" --learning_rate 5e-4 "${COMMON[@]}" ;;
    v2a|a2v)
      local steps=$V2A_STEPS; [ "$1" = a2v ] && steps=$A2V_STEPS
      local reinject=$V2A_REINJECT generated=audio; [ "$1" = a2v ] && reinject=$A2V_REINJECT generated=video
      [ "$reinject" = static ] && reinject=$generated
      /usr/bin/time -f "   $1 wall %e s" $PY examples/train_fusion.py --task "$1" --audio_model "$WORK/t2a" \
          --video_model "$WORK/t2v" --data_dir "$WORK/train" --output_dir "$out" --preset tiny \
          --adapter_config '{"hidden_size": 128, "mlp_dim": 256, "num_blocks": 4, "time_embed_dim": 128, "time_bias": true, "reinject": "'"$reinject"'"}' \
          --logit_mean -2.0 --freeze_time_bias --max_train_steps "$steps" --learning_rate 1e-3 "${FUSION_EMA_ARGS[@]}" "${COMMON[@]}" ;;
    a2v_ft) finetune a2v "$out" "$FT_SEED" ;;
    students)  # the 8-step students of the two fine-tunes, one after the other (docs/distillation.md); not in the default run
      local d generated extra
      for d in v2a a2v; do
        if [ -f "$out/$d/model_index.json" ]; then echo "   $d student: done"; continue; fi
        generated=audio extra=(--teacher_guidance_stop "$V2A_GUIDANCE_STOP"); [ $d = a2v ] && generated=video extra=()
        /usr/bin/time -f "   $d student wall %e s" $PY examples/distill_fusion.py --teacher "$WORK/${d}_ft" "${extra[@]}" \
            --data_dir "$WORK/train" --cache_dir "$WORK/cache" --output_dir "$out/$d" --lora_targets fusion $generated \
            --num_student_steps 8 --num_trajectories 512 --trajectory_batch_size 16 --train_batch_size 16 --max_train_steps 1200 \
            --learning_rate 2e-4 --lr_warmup_steps 100 --checkpointing_steps 200 --checkpoints_total_limit 1 --resume_from_checkpoint latest
      done ;;
    v2a_ft)
      if [ "$(wc -w <<< "$V2A_FT_SEEDS")" -eq 1 ]; then finetune v2a "$out" $V2A_FT_SEEDS; else select_v2a_ft; fi ;;
    *) echo "unknown stage $1 (data, t2a, t2v, v2a, a2v, v2a_ft, a2v_ft, students)" >&2; exit 2 ;;
  esac
}

finetune() {  # finetune TASK OUTPUT_DIR SEED: the Fusion Blocks of stage TASK, fine-tuned at lr 3e-4
  local steps=$V2A_FT_STEPS extra=(--repeat_fps 8=3 --conditioning_text_dropout 0.6)
  [ "$1" = a2v ] && steps=$A2V_FT_STEPS extra=()
  /usr/bin/time -f "   ${2##*/} wall %e s" $PY examples/train_fusion.py --task "$1" --audio_model "$WORK/t2a" \
      --video_model "$WORK/t2v" --data_dir "$WORK/train" --output_dir "$2" --preset tiny --adapter_model "$WORK/$1" \
      --logit_mean -2.0 --freeze_time_bias --max_train_steps "$steps" --learning_rate 3e-4 "${extra[@]}" "${FUSION_EMA_ARGS[@]}" "${COMMON[@]}" \
      --lr_warmup_steps 50 --seed "$3"
}

select_v2a_ft() (  # one V2A fine-tune per seed (each skipped once finished), then the best on WORK/val -> WORK/v2a_ft
  # In a lane, a part that starts once the other lane is done takes both threads (each part is minutes long).
  if [ "${OMP_NUM_THREADS:-}" = 1 ] && [ -f "$WORK/.other_lane_done" ]; then export OMP_NUM_THREADS=2; fi
  local seed candidates=()
  for seed in $V2A_FT_SEEDS; do
    candidates+=("$WORK/v2a_ft_seed$seed")
    if [ -f "$WORK/v2a_ft_seed$seed/model_index.json" ]; then echo "   seed $seed: done"; continue; fi
    echo "   seed $seed (${OMP_NUM_THREADS:-default} thread(s))"
    finetune v2a "$WORK/v2a_ft_seed$seed" "$seed"
    if [ "${OMP_NUM_THREADS:-}" = 1 ] && [ -f "$WORK/.other_lane_done" ]; then export OMP_NUM_THREADS=2; fi
  done
  [ -f "$WORK/val/metadata.jsonl" ] || av-link make-synthetic --out "$WORK/val" --num-clips 40 --split id --seed "$VAL_SEED" --quiet
  /usr/bin/time -f "   selection wall %e s" $PY examples/select_v2a_finetune.py --candidates "${candidates[@]}" \
      --data "$WORK/val" --guidance_stop "$V2A_GUIDANCE_STOP" --output_dir "$WORK/v2a_ft"
)

latest_checkpoint() {  # the name of the newest checkpoint in stage $1's output folder, or nothing
  local best=-1 dir step
  for dir in "$WORK/$1"/checkpoint-*; do
    step=${dir##*/checkpoint-}
    if [[ $step =~ ^[0-9]+$ ]] && [ "$step" -gt "$best" ]; then best=$step; fi
  done
  if [ "$best" -ge 0 ]; then echo "checkpoint-$best"; fi
}

stop_tree() {  # SIGTERM to process $1 and all its descendants (the stage's shell, /usr/bin/time, Python)
  local pids=($1) i=0
  while [ $i -lt ${#pids[@]} ]; do pids+=($(pgrep -P "${pids[$i]}" || true)); i=$((i + 1)); done
  kill -TERM "${pids[@]}" 2>/dev/null || true
}

lane() {  # lane STAGE...: the stages one after the other, each logging to WORK_DIR/<stage>.log. A stage runs on one
  # thread while the other lane runs and on two once it has finished: a stage still running then is stopped right
  # after its next checkpoint and resumes from it on both threads (resuming is exact; t2a beside a shorter t2v, v2a
  # beside a shorter a2v lane). Two threads per process while the other lane also runs would thrash the 2 cores.
  local name pid before
  for name in "$@"; do
    : > "$WORK/$name.log"
    if [ ! -f "$WORK/.other_lane_done" ]; then
      OMP_NUM_THREADS=1 stage "$name" >> "$WORK/$name.log" 2>&1 &
      pid=$!
      while kill -0 $pid 2>/dev/null && [ ! -f "$WORK/.other_lane_done" ]; do sleep "$POLL_SECONDS"; done
      before=$(latest_checkpoint "$name")
      while kill -0 $pid 2>/dev/null && [ "$(latest_checkpoint "$name")" = "$before" ]; do sleep "$POLL_SECONDS"; done
      if ! kill -0 $pid 2>/dev/null; then  # finished on one thread
        wait $pid || { echo "$name failed: see $WORK/$name.log" >&2; return 1; }
        continue
      fi
      stop_tree $pid; wait $pid || true
      echo "== $name: the other lane is done; resuming from $(latest_checkpoint "$name") on 2 threads" >> "$WORK/$name.log"
    fi
    OMP_NUM_THREADS=2 stage "$name" >> "$WORK/$name.log" 2>&1 || { echo "$name failed: see $WORK/$name.log" >&2; return 1; }
  done
  touch "$WORK/.other_lane_done"
}

side_by_side() {  # side_by_side "A [A2]" "B [B2]": two lanes at once; fails if either fails
  rm -f "$WORK/.other_lane_done"
  lane $1 & local a=$!
  lane $2 & local b=$!
  local status=0
  wait $a || status=1
  wait $b || status=1
  for name in $1 $2; do tail -n 1 "$WORK/$name.log"; done
  return $status
}

if [ $# -gt 0 ]; then
  for name in "$@"; do stage "$name"; done
else
  SECONDS=0
  stage data
  side_by_side t2a t2v
  side_by_side "v2a v2a_ft" "a2v a2v_ft"
  echo "whole stack: $SECONDS s"
fi
