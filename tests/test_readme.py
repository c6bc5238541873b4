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
