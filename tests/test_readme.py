"""The README's promises that code can check."""

from __future__ import annotations

import re
import textwrap
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_start_is_two_commands_and_ci_runs_the_second():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", quick, re.S)
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    assert commands[0].endswith("lightdl fit --config configs/af_cnn.yaml")
    assert commands[1].endswith("python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    pattern = re.search(r"grep -m1 -E '(.*?)' README.md", ci).group(1)
    assert re.search(pattern, commands[1]) and not re.search(pattern, commands[0])
    # CI takes the first matching line of the README: the quick start's.
    first = next(line for line in readme.splitlines() if re.search(pattern, line))
    assert first == commands[1]


def test_every_config_in_the_readme_exists():
    readme = (ROOT / "README.md").read_text()
    train = readme.split("## Train", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(\w+)` \| ", train, re.M))
    configs = {p.stem for p in (ROOT / "configs").glob("*.yaml")}
    assert listed == configs


def test_every_python_example_in_the_readme_runs(tmp_path, monkeypatch):
    from lightdl.cli import main

    readme = (ROOT / "README.md").read_text()
    blocks = [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)\n *```", readme, re.S)]
    assert blocks
    monkeypatch.chdir(tmp_path)
    # An example that loads a run (runs/<config>) gets one: its config, fitted for an epoch.
    for name in sorted({n for b in blocks for n in re.findall(r"runs/(\w+)", b)}):
        assert main(["fit", "--config", str(ROOT / "configs" / f"{name}.yaml"),
                     "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
                     "--trainer.enable_model_summary", "false"]) == 0, name
    for block in blocks:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*batching rule.*")
            exec(compile(block, "README.md", "exec"), {})
