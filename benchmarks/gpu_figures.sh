#!/usr/bin/env bash
# Issue #9's GPU figures, in calls that each fit the device tool's 10 minutes. On this machine first:
#   .venv/bin/zoo-data fetch --data-dir data --copy          # 42 MB: Fashion-MNIST, Shakespeare, two genomes
# then, through the device tool, from the repository root (its python already has torch, onnx, onnxruntime):
#   bash benchmarks/gpu_figures.sh throughput     # every family, plain fp32 vs fast path, eager and compiled
#   bash benchmarks/gpu_figures.sh targets        # ResNetCIFAR (speedrun) to 0.94 test, char GPT to 1.50 nats
#   COMPILE_MODE=reduce-overhead bash benchmarks/gpu_figures.sh targets   # the same, compiled into CUDA graphs
# with carry ["data"]. Everything it prints is also written under $OUT (default: gpu_figures/), with each
# time-to-target run's metrics.jsonl and summary.json, for benchmarks/RESULTS.md.
set -euo pipefail
stage=${1:-}
if [[ "$stage" != throughput && "$stage" != targets ]]; then
  echo "usage: bash benchmarks/gpu_figures.sh throughput|targets (got '$stage')" >&2
  exit 2
fi
device=${DEVICE:-cuda}
out=${OUT:-gpu_figures}
mkdir -p "$out"
export PYTHONPATH=. PYTHONUNBUFFERED=1  # unbuffered: a call cut at its limit still returns what was printed
python=${PYTHON:-python3}  # on the device machine, python3 is the one with torch

"$python" - <<'EOF' | tee "$out/device.txt"
import platform, torch
name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "CPU"
print(f"{name}; torch {torch.__version__}, CUDA {torch.version.cuda}; python {platform.python_version()}")
EOF
date -u +%Y-%m-%d | tee -a "$out/device.txt"

case "$stage" in
  throughput)
    "$python" benchmarks/train_speed.py --device "$device" --data-dir data --steps "${STEPS:-50}" \
      ${MODELS:+--models $MODELS} | tee "$out/throughput_eager.txt"
    "$python" benchmarks/train_speed.py --device "$device" --data-dir data --steps "${STEPS:-50}" --compile \
      --models ${MODELS:-lenet5 resnet-cifar char-gpt dcgan} | tee "$out/throughput_compiled.txt"
    ;;
  targets)
    runs=$(mktemp -d)
    "$python" benchmarks/train_speed.py --device "$device" --data-dir data --time-to-target --out "$runs" \
      ${COMPILE:+--compile} ${COMPILE_MODE:+--compile-mode "$COMPILE_MODE"} | tee "$out/time_to_target.txt"
    for run in "$runs"/*/; do
      mkdir -p "$out/$(basename "$run")"
      cp "$run/metrics.jsonl" "$run/summary.json" "$out/$(basename "$run")/"
    done
    ;;
esac
