"""Small images are not blown up to 512 px unannounced: ITEM_SIZE reaches `bench run`, the start line says the item
size, and a run whose item transform upscales most images far beyond what the batch needs warns once."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import make_image_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("item, img, sides, warns", [
    (512, 32, [28] * 10, True),                 # the issue's case: 28-px images, 32-px batches, 512-px items
    (32, 32, [28] * 10, False),                 # --item-size 32: nothing beyond the batch
    (512, 224, [500] * 10, False),              # the article's photos: a crop at about their own size
    (512, 224, [400] * 10, False),              # a mild upscale (1.28x) is left alone
    (512, 224, [256] * 10, True),               # 512 on 256-px thumbnails at 224: 2x
    (512, 32, [28] * 5 + [600] * 5, False),     # only half of them small: not "most"
    (512, 32, [28] * 6 + [600] * 4, True),      # most
    (512, 384, [28] * 10, False),               # the batch itself needs 384: 512 is 1.33x that
    (512, 32, [0] * 10, False),                 # no readable sizes: nothing to say
])
def test_upscale_rule(item, img, sides, warns):
    from bench.data.itemsize import upscale_note
    note = upscale_note(item, img, pd.Series(sides), "d")
    assert (note is not None) == warns, note


def test_the_warning_names_the_setting_that_removes_the_waste():
    from bench.data.itemsize import upscale_note
    note = upscale_note(512, 32, pd.Series([28] * 7 + [40] * 3), "shapes")
    assert note.startswith("item size 512 px: 100% of shapes's 10 images have a shorter side of 28 px (median)")
    assert "--item-size 32 (make: ITEM_SIZE=32)" in note and "article's protocol, kept by default" in note
    # the suggestion is what the median image needs: its own side when larger than the batch
    assert "--item-size 100 " in upscale_note(512, 32, pd.Series([100] * 10), "d")


def _no_training(monkeypatch):
    import bench.train.protocol as protocol
    monkeypatch.setattr(protocol, "run", lambda cfg, prepared: dict(
        arch=cfg.arch, total_seconds=0, precision="fp32", memory_format="contiguous", weights_used="random",
        run_id=prepared.run_id))


def test_start_line_and_one_warning(tmp_path, monkeypatch, capsys):
    from bench.cli import main
    folder = make_image_folder(tmp_path / "small", size=24)
    _no_training(monkeypatch)
    argv = ["run", "--arch", "resnet18", "--dataset", str(folder), "--results-dir", str(tmp_path / "r"),
            "--size", "32", "--bs", "8", "--pct", "1", "--pretrained", "false"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "32 px batches from 512 px item crops" in err
    warnings = [line for line in err.splitlines() if line.startswith("bench: warning: item size 512 px")]
    assert len(warnings) == 1 and "--item-size 32" in warnings[0]

    assert main(argv + ["--item-size", "32"]) == 0
    err = capsys.readouterr().err
    assert "32 px batches from 32 px item crops" in err and "warning: item size" not in err


def test_make_passes_item_size():
    out = subprocess.run(["make", "-n", "bench", "ITEM_SIZE=48", "STAMP="], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    line = next(l for l in out.splitlines() if " run --arch" in l)
    assert "--item-size 48" in line
    out = subprocess.run(["make", "-n", "bench", "STAMP="], cwd=ROOT, capture_output=True, text=True).stdout
    assert "--item-size" not in out  # unset: the profile's item size (the article's 512 for a user folder)


def test_a_sweep_warns_once_for_the_runs_it_will_train(tmp_path, capsys):
    """The workers print nothing (the sweep prints one line per run), so the plan says it: once for all the runs on
    the same images, not at all once the runs are done or with an item size that fits."""
    from bench.cli import main
    folder = make_image_folder(tmp_path / "small", size=24)
    exp = tmp_path / "small.yaml"
    exp.write_text(f"dataset: {folder}\nprotocol: {{img_size: 32, batch_size: 8, pct_images: 1.0, "
                   "pretrained: 'false'}\narchs: [resnet18, seresnet10]\nseeds: [0, 1]\n")
    base = ["sweep", str(exp), "--results-dir", str(tmp_path / "r"), "--dry-run"]
    assert main(base) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning: item size 512 px" in line]
    assert len(warnings) == 1 and "--item-size 32" in warnings[0]
    assert main(base + ["--set", "item_size=32"]) == 0
    assert "warning: item size" not in capsys.readouterr().err
