#!/usr/bin/env bash
# Every GPU figure the issues ask for, in one run (about 8 minutes on an H100), printed to stdout:
#   SHARED=../shared OUT=/tmp/gpu_checks bash benchmarks/gpu_checks.sh
# Needs the project installed (README, Install), a CUDA GPU, and the reference data in $SHARED.
set -u
SHARED=${SHARED:-../shared}
OUT=${OUT:-/tmp/gpu_checks}
W=$SHARED/weights/rt4ksr_official
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit --format=csv

echo "== network time, NTIRE protocol (issue 6)"
bench() {  # scale, input, extra flags
  echo "-- x$1 $2 ${*:3}"
  rt4ksr benchmark --input "$2" "${@:3}" --device cuda --weights "$W/rt4ksr_x$1.pth"
}
bench 2 1080p --precision fp16 --compile
bench 2 1080p --precision fp16
bench 2 1080p --precision fp32
bench 3 720p --precision fp16 --compile

echo "== fp16 quality on Set5 (issue 6: within 0.01 dB of fp32)"
for p in fp32 fp16; do
  rt4ksr evaluate "$W/rt4ksr_x2.pth" --data "$SHARED/data" --sets Set5 --device cuda \
    --precision $p --out "$OUT/eval_$p" --overwrite | grep 'Set5 ('
done

echo "== tiling overhead and peak memory, 1080p -> 4K (issue 5)"
python benchmarks/tiling_overhead.py --device cuda --runs 20 \
  --frame "$SHARED/data/UHD_1080p/crops_1920x1080/lunch_crop1920x1080.png"

echo "== NTIRE 2023 protocol (issue 13): x2 1080p->4K and x3 720p->4K fp16, eager / compiled / TensorRT"
python -c "import onnxruntime as o; print('onnxruntime providers:', o.get_available_providers())" || true
bench 2 1080p --score-data "$SHARED/data" --score-sets Set5 Set14
bench 2 1080p --compile
bench 2 1080p --backend tensorrt --tile 540 || echo "TensorRT: pip install onnxruntime-gpu tensorrt, then rerun"
bench 3 720p --score-data "$SHARED/data" --score-sets Set5 Set14
bench 3 720p --compile
bench 3 720p --backend tensorrt --tile 360 || echo "TensorRT: pip install onnxruntime-gpu tensorrt, then rerun"
nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu --format=csv

echo "== end-to-end video FPS, 60-frame 1080p clip, NVENC (issues 5, 6, 13)"
python benchmarks/make_clip.py "$OUT/clip1080.mp4" --frames 60 --source "$SHARED/data/UHD_1080p/crops_1920x1080"
for batch in 1 4 8; do
  python benchmarks/video_pipeline.py --clip "$OUT/clip1080.mp4" --device cuda --precision fp16 --batch $batch \
    --weights "$W/rt4ksr_x2.pth" | grep -E 'encoder|FPS|ratio'
done
rt4ksr upscale "$OUT/clip1080.mp4" "$OUT/video" --weights "$W/rt4ksr_x2.pth" --precision fp16 --batch 8 \
  --device cuda --overwrite --target-fps 60 2>/dev/null | grep -E 'encoder|FPS end to end|latency'
rt4ksr upscale "$OUT/clip1080.mp4" "$OUT/video_auto" --weights "$W/rt4ksr_x2.pth" --device cuda --overwrite \
  --target-fps 60 --auto 2>/dev/null | grep -E 'real-time choice|FPS end to end|latency'

echo "== short training of the x2 recipe, fp32 and bf16 (issue 4); BSDS200 stands in for DF2K"
for amp in '~' bf16; do
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$OUT/mem_$amp.txt" &
  sampler=$!
  python rt4ksr_arch/train.py -opt options/train/rt4ksr_x2.yml --force_yml "name=RT4KSR_x2_gpu_amp_$amp" \
    "datasets:train:dataroot_gt=$SHARED/data/BSDS200" "datasets:val_1:dataroot_gt=$SHARED/data/Set5/HR" \
    "datasets:val_1:dataroot_lq=$SHARED/data/Set5/LR_bicubic/X2" "datasets:val_2:dataroot_gt=$SHARED/data/Set14/HR" \
    "datasets:val_2:dataroot_lq=$SHARED/data/Set14/LR_bicubic/X2" "train:amp=$amp" "train:total_iter=300" \
    "val:val_freq=300" "logger:print_freq=50" "logger:use_tb_logger=false" "datasets:train:num_worker_per_gpu=8" \
    2>&1 | grep -E 'iter:|# psnr|bicubic baseline|Time consumed'
  kill $sampler
  echo "amp=$amp: peak GPU memory used $(sort -n "$OUT/mem_$amp.txt" | tail -n 1) MiB (nvidia-smi, whole GPU)"
done

echo "== training throughput, LR made by the loader's workers vs on the GPU (issue 14: loader wait <= 10%)"
python -m pytest -q tests/test_online_bicubic_dataset.py -k workers_lr -rs 2>&1 | tail -n 2
for amp in fp32 bf16; do
  python benchmarks/train_throughput.py --device cuda --amp $amp --batch 64 --gt-size 256 --workers 8 \
    --hr "$SHARED/data/BSDS200/HR" --warmup 10 --iters 100 2>&1 | grep -v -i warn
done
