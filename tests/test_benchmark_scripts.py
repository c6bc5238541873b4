"""The benchmark scripts' command lines: every timing benchmark and the
accuracy tables take ``--device`` (issue: GPU readiness); the self-adaptive
experiments run on the CPU only (see ``docs/gpu.rst``)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / 'benchmarks'
WITH_DEVICE = sorted(p.name for p in BENCHMARKS.glob('bench_*.py')) + ['run_accuracy.py']


def test_the_list_is_the_scripts():
    scripts = {p.name for p in BENCHMARKS.glob('*.py') if not p.name.startswith('_')}
    cpu_only = {'run_domain_shift.py', 'run_self_adaptive.py'}
    assert scripts == set(WITH_DEVICE) | cpu_only


@pytest.mark.parametrize('script', WITH_DEVICE)
def test_script_takes_device(script):
    out = subprocess.run([sys.executable, str(BENCHMARKS / script), '--help'],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '--device' in out.stdout
