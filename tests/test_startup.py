"""Issue 29: what answers at once imports no torch: --version, --help, models, and the refusals of
arguments and paths (an existing output, a missing input, an unknown model, a bad option)."""
from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from lccodec.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("torch" in sys.modules, code, file=sys.stderr)
"""


def _run(args: list[str], cwd) -> tuple[bool, int, str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=cwd)
    *lines, probe = done.stderr.strip().splitlines()
    torch_loaded, code = probe.split()
    return torch_loaded == "True", int(code or 0), "\n".join(lines)


@pytest.mark.parametrize("args, code", [
    (["--version"], 0), (["--help"], 0), (["models"], 0), (["models", "--json"], 0),
    (["encode", "in.png"], 1),  # in.lic exists: lic chose that name, so it is not overwritten
    (["encode", "missing.png", "-o", "out.lic"], 1),
    (["encode", "in.png", "-o", "out.lic", "--model", "nope"], 1),
    (["encode", "in.png", "--bogus"], 2),
    (["decode", "in.lic"], 1),  # in.png exists
])
def test_quick_answers_import_no_torch(tmp_path, args, code):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    (tmp_path / "in.lic").write_bytes(b"x")
    torch_loaded, exit_code, stderr = _run(args, tmp_path)
    assert exit_code == code, stderr
    assert not torch_loaded
    if code:
        assert stderr.startswith("lic: error: ") and len(stderr.splitlines()) == 1
