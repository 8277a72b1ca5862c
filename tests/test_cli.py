"""The `lightdl` command end to end, in a temporary directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _lightdl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lightdl.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_help_lists_commands(tmp_path):
    r = _lightdl("--help", cwd=tmp_path)
    assert r.returncode == 0 and "info" in r.stdout and "data describe" in r.stdout


def test_version_and_python_dash_m(tmp_path):
    from lightdl import __version__

    r = subprocess.run([sys.executable, "-m", "lightdl", "--version"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == f"lightdl {__version__}", r


def test_data_describe_writes_a_png(tmp_path):
    r = _lightdl("data", "describe", "gates", "--arg", "gate=xor", "--out", "gates.png",
                 cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "xor" in r.stdout.lower() or "class" in r.stdout.lower()
    png = tmp_path / "gates.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_needs_a_subcommand(tmp_path):
    r = _lightdl("data", cwd=tmp_path)
    assert r.returncode == 2 and "lightdl data describe" in r.stderr


def test_data_describe_bad_argument_is_one_clear_line(tmp_path):
    r = _lightdl("data", "describe", "ucr", "--arg", f"root={tmp_path}", "--arg", "name=Nope",
                 cwd=tmp_path)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert "Nope" in r.stderr
