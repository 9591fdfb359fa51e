"""README's usage block runs as written, in order, in a folder holding a photo.png (issue 30)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

import lccodec

from conftest import photo_like

README = Path(__file__).resolve().parents[1] / "README.md"


def usage_block() -> str:
    """The first ```sh block of the README's '## Usage' section."""
    usage = README.read_text().split("\n## Usage\n", 1)[1]
    return re.search(r"```sh\n(.*?)```", usage, re.S).group(1)


def test_the_usage_block_runs_as_written(tmp_path):
    Image.fromarray(photo_like(96, 128, seed=2)).save(tmp_path / "photo.png")
    bin_dir = tmp_path / ".bin"  # `lic` on PATH, running this checkout's lccodec
    bin_dir.mkdir()
    (bin_dir / "lic").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m lccodec.cli "$@"\n')
    (bin_dir / "lic").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(Path(lccodec.__file__).resolve().parents[1])}
    for line in usage_block().splitlines():
        res = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"{line}\n{res.stderr}"
        assert "lic: error" not in res.stderr and "cannot reach" not in res.stderr, f"{line}\n{res.stderr}"
    made = {p.name for p in tmp_path.iterdir()} | {f"lics/{p.name}" for p in (tmp_path / "lics").iterdir()}
    assert {"photo.lic", "small.lic", "small.png", "out.webp", "bare.lic", "copy.png",
            "lics/photo.lic", "lics/small.lic"} <= made
