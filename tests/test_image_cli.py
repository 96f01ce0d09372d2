"""`robodiff image train|sample`: help, a tiny run end to end (PNG grid + trajectory strip), clear errors."""

import numpy as np
from PIL import Image

from robodiff.cli import build_parser, main


def test_image_help_explains_both_commands(capsys):
    parser = build_parser()
    image = parser._subparsers._group_actions[0].choices["image"]
    text = image.format_help()
    assert "train" in text and "sample" in text
    sample_help = image._subparsers._group_actions[0].choices["sample"].format_help()
    assert "--guidance" in sample_help and "--trajectory" in sample_help and "--caption" in sample_help


def test_train_then_sample_writes_a_grid_and_a_trajectory_strip(tmp_path, one_thread, capsys):
    run = tmp_path / "run"
    assert main(["image", "train", "--data", "digits", "--size", "8", "--channels", "8,16", "--timesteps", "50",
                 "--steps", "2", "--batch-size", "8", "--out", str(run)]) == 0
    ckpt = run / "checkpoints" / "latest.ckpt"
    assert ckpt.exists()
    grid, strip = tmp_path / "grid.png", tmp_path / "strip.png"
    assert main(["image", "sample", str(ckpt), "--out", str(grid), "--n", "20", "--steps", "3",
                 "--trajectory", str(strip), "--trajectory-rows", "2"]) == 0
    g = np.asarray(Image.open(grid))
    assert g.shape[:2] == (2 * 9 + 1, 10 * 9 + 1)  # 2 rows x 10 digit columns of 8 px, 1 px padding
    s = np.asarray(Image.open(strip))
    assert s.shape[:2] == (2 * 9 + 1, 4 * 9 + 1)  # 2 samples x (3 steps + result)


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert main(["image", "sample", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "g.png")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "warning: command group" not in line]
    assert len(err) == 1 and err[0].startswith("robodiff: error:") and "missing.ckpt" in err[0]
    assert not (tmp_path / "g.png").exists()
