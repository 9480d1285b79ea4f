"""The README's examples run: every ```python block, and every `ridgeplan ...` line of its ```bash blocks
(except those that need a GPU, a file the reader makes first, or write into the repository)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from model.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
NEEDS_MORE = ("calibrate", "bench", "--write")  # a GPU / a CSV from `collect`; timing runs; writes docs/


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


def _commands() -> list[str]:
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            for part in line.split(" | "):  # `a | b` in the README shows two commands side by side
                cmd = part.split("#", 1)[0].strip()
                if cmd.startswith("ridgeplan ") and not any(word in cmd for word in NEEDS_MORE):
                    out.append(cmd)
    return out


def test_readme_has_examples():
    assert len(_python_blocks()) >= 4 and len(_commands()) >= 12


@pytest.mark.parametrize("code", _python_blocks(), ids=lambda c: c.splitlines()[0][:40])
def test_python_example_runs(code, capsys):
    exec(compile(code, "README.md", "exec"), {})


@pytest.mark.parametrize("command", _commands())
def test_cli_example_runs(command, capsys):
    assert main(shlex.split(command)[1:]) == 0, capsys.readouterr().err
