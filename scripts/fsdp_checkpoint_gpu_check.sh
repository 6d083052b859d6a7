#!/usr/bin/env bash
# accelerate's real FSDP path (fsdp_wan_longcat.yaml, one GPU process) through examples/train_fusion.py between tiny
# Wan / LongCat folders: adapter-only checkpoints (trained_sharded/), a resume, and a straight run to compare with.
# CPU tests cannot run it (accelerate runs FSDP only on accelerators). Build the inputs first, on any machine:
#   python -c "from av_link.testing import *; from av_link.data.synthetic import *; te, tok = tiny_umt5_encoder();
#     tiny_wan_pipeline(text_encoder=te, tokenizer=tok).save_pretrained('.gpucheck/wan');
#     tiny_longcat_pipeline(text_encoder=te, tokenizer=tok).save_pretrained('.gpucheck/longcat');
#     make_synthetic_dataset('.gpucheck/data', 4, SynthHitsConfig(duration=1.0, sample_rate=4000), seed=0, progress=False)"
#   python examples/cache_latents.py --audio_model .gpucheck/longcat --video_model .gpucheck/wan --data_dir .gpucheck/data \
#     --output_dir .gpucheck/cache --clip_seconds 1.0 --video_fps 8 --height 32 --width 32 --max_sequence_length 16
# Then on the GPU machine: bash scripts/fsdp_checkpoint_gpu_check.sh   (A="python" runs it without FSDP, on a CPU)
set -e
A=${A:-"accelerate launch --config_file examples/accelerate_configs/fsdp_wan_longcat.yaml --num_processes 1 --mixed_precision bf16"}
C="--audio_model .gpucheck/longcat --video_model .gpucheck/wan --latent_cache .gpucheck/cache --task v2a --preset tiny --train_batch_size 2 --learning_rate 1e-3 --lr_warmup_steps 0 --report_to none --logging_steps 1 --clip_seconds 1.0 --video_fps 8 --height 32 --width 32 --max_sequence_length 16 --use_ema --checkpointing_steps 2 --seed 0"
O=${O:-/tmp/fsdp}
rm -rf $O; mkdir -p $O
$A examples/train_fusion.py $C --output_dir $O/resumed --max_train_steps 4
echo "== checkpoint-4"; (cd $O/resumed/checkpoint-4 && find . -type f | sort && du -sh .)
$A examples/train_fusion.py $C --output_dir $O/resumed --max_train_steps 6 --resume_from_checkpoint latest
$A examples/train_fusion.py $C --output_dir $O/straight --max_train_steps 6
python3 - <<PY
from safetensors.torch import load_file
a = load_file("$O/resumed/fusion_adapter/diffusion_pytorch_model.safetensors")
b = load_file("$O/straight/fusion_adapter/diffusion_pytorch_model.safetensors")
print("== resumed vs straight: max |diff|", max((a[k].float() - b[k].float()).abs().max().item() for k in a), "keys", len(a) == len(b))
PY
