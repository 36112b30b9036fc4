"""`make install` shows what matters from pip: the per-package "Location ... is ignored" warnings that this machine's
pip config causes are dropped, every other line (errors included) is kept, and a failing pip fails make."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FAKE_PYTHON = """#!/bin/bash
# stands for `python3 -m venv DIR`: makes DIR/bin/pip, a pip that talks as this machine's pip does
dir="${@: -1}"
mkdir -p "$dir/bin"
cat > "$dir/bin/pip" <<'PIP'
#!/bin/bash
echo "pip $*" >> "$(dirname "$0")/../calls"
for i in $(seq 1 80); do
  echo "WARNING: Location 'file:///opt/pypi-more/simple/pkg$i/' is ignored: it is neither a file nor a directory." >&2
done
echo "WARNING: Skipping page https://example.invalid/ because of a real problem" >&2
if [ -n "$FAIL_ON" ] && [[ "$*" == *"$FAIL_ON"* ]]; then
  echo "ERROR: No matching distribution found for $FAIL_ON" >&2
  exit 1
fi
PIP
chmod +x "$dir/bin/pip"
"""


def make_install(tmp_path: Path, **env) -> subprocess.CompletedProcess:
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return subprocess.run(["make", "install", f"PYTHON={fake}", f"VENV={tmp_path / 'venv'}"], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=120)


def test_install_drops_only_the_location_warnings(tmp_path):
    r = make_install(tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "WARNING: Location" not in out
    assert "pip install torch==2.14.1 torchvision==0.29.1" in r.stdout  # each step is still named
    assert out.count("WARNING: Skipping page") == 3  # any other warning still shows, once per pip call
    assert len((tmp_path / "venv" / "calls").read_text().splitlines()) == 3
    assert (tmp_path / "venv" / ".installed").exists()


def test_a_failing_pip_fails_make_and_its_error_shows(tmp_path):
    r = make_install(tmp_path, FAIL_ON="torchvision")
    assert r.returncode != 0
    assert "ERROR: No matching distribution found for torchvision" in r.stderr + r.stdout
    assert not (tmp_path / "venv" / ".installed").exists()
    assert len((tmp_path / "venv" / "calls").read_text().splitlines()) == 2  # stopped at the failing step
