from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / 'README.md').read_text()
    commands = re.findall(r'```bash\n(.*?)\n```', readme, flags=re.S)
    assert len(commands) >= 2
    main_job, test_command = commands[0], commands[1]
    assert 'python -m pyg_skeleton' in main_job
    assert 'pytest' in test_command
    ci = (ROOT / '.ci' / 'run').read_text().splitlines()
    assert test_command in ci


def test_test_command_installs_only_the_package_and_its_extras():
    # The body mesh ships with the package: no extra package is installed on
    # the side (e.g. without its dependencies), in the README or in CI.
    readme = (ROOT / 'README.md').read_text()
    test_command = re.findall(r'```bash\n(.*?)\n```', readme, flags=re.S)[1]
    installs = [step.strip() for step in test_command.split('&&') if 'pip install' in step]
    assert installs == ['.venv/bin/pip install torch==2.13.0 -e ".[test]"',
                        '.venv/bin/pip install --no-build-isolation torch-scatter torch-sparse']
