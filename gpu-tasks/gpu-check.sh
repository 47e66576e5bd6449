#!/usr/bin/env bash
# GPU check: runs one short training job on the GPU backend and on wasm, on this machine, and
# prints trajectory tasks per second for each. Builds nothing and downloads nothing: run it inside
# the trainer image (it carries dist/, data/ and tfjs-node-gpu) on an instance with an NVIDIA GPU:
#   docker run --rm --gpus all --entrypoint /app/gpu-tasks/gpu-check.sh metricopt-train:gpu
# or in a checkout where `npm run build` ran and the GPU backend package is installed.
#   GPU_BACKEND=tensorflow|webgpu (default tensorflow)   GPU_CHECK_TASKS=64 (trajectory tasks per run)
# Exit status: 0 when both runs finished, 1 when either failed (the GPU backend refusing to load
# is BACKEND_UNAVAILABLE in its log, never a silent wasm run).
set -uo pipefail
APP="${APP:-$(cd "$(dirname "$0")/.." && pwd)}"
TASKS="${GPU_CHECK_TASKS:-64}"
GPU_BACKEND="${GPU_BACKEND:-tensorflow}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "gpu-check: node $(node --version), $(uptime | sed 's/.*load average/load average/')"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "gpu-check: nvidia-smi not available"
cat > "$work/job.json" <<JSON
{
  "format": "metricopt.job", "schemaVersion": 1, "id": "gpu-check",
  "dataset": { "source": "$APP/data/a9a.train.libsvm.gz", "features": 123 },
  "metric": { "builtin": "mcr" }, "recipe": "tuned", "seed": 1,
  "overrides": { "metaTrain": { "ensemble": 1, "trajectories": { "tasks": $TASKS } } },
  "output": { "valueFunctionId": "gpu-check" },
  "checkpoint": { "chunkTasks": $TASKS }
}
JSON
status=0
for backend in "$GPU_BACKEND" wasm; do
  start=$(date +%s%N)
  if METRICOPT_STORE="$work/store-$backend" METRICOPT_JOB="$work/job.json" METRICOPT_BACKEND="$backend" \
    node "$APP/dist/gpu-tasks/train.js" >"$work/$backend.log" 2>"$work/$backend.err"; then
    wall=$(( ($(date +%s%N) - start) / 1000000 ))
    node -e '
      const [file, backend, tasks, wall] = process.argv.slice(1);
      const lines = require("fs").readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));
      const traj = lines.find((l) => l.event === "stage-end" && String(l.stage).startsWith("trajectories"));
      const chosen = lines.find((l) => l.event === "backend");
      const s = traj ? traj.seconds : NaN;
      console.log(`${backend}: backend ${chosen?.backend}, ${tasks} tasks, trajectories ${s.toFixed(2)} s = ${(tasks / s).toFixed(2)} tasks/s; whole job ${(Number(wall) / 1000).toFixed(1)} s`);
    ' "$work/$backend.log" "$backend" "$TASKS" "$wall"
  else
    echo "$backend: FAILED"
    tail -n 3 "$work/$backend.log" "$work/$backend.err"
    status=1
  fi
done
# libtensorflow says which devices it registered; a GPU build that found no GPU runs on the CPU.
if [ "$GPU_BACKEND" = tensorflow ]; then
  if grep -q "device:GPU:0" "$work/tensorflow.err" 2>/dev/null; then
    echo "tensorflow: libtensorflow registered GPU:0 ($(grep -o 'name: [^,]*' "$work/tensorflow.err" | head -n 1))"
  else
    echo "tensorflow: libtensorflow registered NO GPU device (CPU kernels): see its stderr"
    grep -iE "cuda|gpu|dlopen" "$work/tensorflow.err" | head -n 5
    status=1
  fi
fi
exit "$status"
