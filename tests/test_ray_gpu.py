"""The Ray backend on a real GPU (skipped without one): benchmarks/ray_gpu_check.py must pass —
4 trials at 0.25 GPU share one device at the same time, a CPU-only trial on the same node stays
off it, and ``nasplug search --backend ray --gpus-per-trial 0.25`` completes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ray_gpu_check.py"


@pytest.mark.gpu
def test_fractional_gpu_trials_share_a_device_and_cpu_trials_stay_off_it(tmp_path, ray_module):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "gpu.md")],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
