"""Words that must match behaviour: the README's protocol table describes the quick profile's phase 2 as it runs."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_phase_2_of_the_quick_profile_is_one_cycle():
    from bench.config import PROFILES
    q = PROFILES["quick"]
    assert q["ft_lr_min"] == q["ft_lr_max"]  # one peak lr for every group (fit_two_phase: slice(min, max))
    row = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| phase 2 |"))
    quick = row.split("|")[3]
    lr = f"{q['ft_lr_max']:.0e}".replace("e-0", "e-")  # 3e-3, as written
    assert f"fit_one_cycle({q['ft_epochs']}, lr_max={lr})" in quick and "one-cycle" in quick
    assert "flat" not in quick  # the epoch log shows the schedule: warm-up to the peak, then down
