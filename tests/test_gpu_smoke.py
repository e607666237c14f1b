"""gpu_smoke.py, the one command for a machine with a GPU, dry-run through the CuPy stand-in with tiny settings:
every stage runs and gives a verdict, a failed or timed-out stage does not stop the others, what reaches the screen
fits in the 12,000 characters a remote run returns, and the CPU reference it compares with matches its settings."""
import json

import pytest

import gpu_smoke

STAGES = ["versions", "tests", "train", "resume", "generate", "bench", "launches", "kernels"]


def table_rows(out):
    return {line.split(" | ")[0].strip("| "): line for line in out.splitlines()
            if line.startswith("| ") and line.split(" | ")[0].strip("| ") in STAGES}


def test_the_dry_run_passes_every_stage(tmp_path, capsys):
    assert gpu_smoke.main(["--dry-run", "--log", str(tmp_path / "smoke.log")]) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert list(rows) == STAGES
    assert "passed" in rows["tests"] and "CPU " in rows["train"] and "bitwise equal" in rows["resume"]
    assert "the same text" in rows["generate"] and "| raven:2x8 | 2 x 8 |" in out
    assert "rows counted" in rows["launches"] and "| **step** |" in out
    assert "smoke: 8 of 8 stages passed" in out and len(out) < 12_000
    log = (tmp_path / "smoke.log").read_text()
    assert "train.py" in log and "--resume" in log and "generate.py" in log and "bench.py" in log


def test_a_stage_that_times_out_is_reported_and_the_rest_still_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(gpu_smoke.DRY_TIMEOUTS, "tests", 0.01)
    assert gpu_smoke.main(["--dry-run", "--log", str(tmp_path / "smoke.log")]) == 1
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert list(rows) == STAGES and "FAILED: timed out after 0 s" in rows["tests"]
    assert "bitwise equal" in rows["resume"] and "smoke: 7 of 8 stages passed; failed: tests" in out


def test_the_cpu_reference_matches_the_smokes_own_settings():
    reference = json.loads(gpu_smoke.REFERENCE.read_text())
    assert reference["flags"] == [*gpu_smoke.RUN, "--steps", str(gpu_smoke.STEPS)]
    assert reference["step"] == gpu_smoke.STEPS and 0.01 <= reference["tolerance"] < 0.5
    assert abs(reference["val_loss"] - reference["val_loss_other_rounding"]) <= reference["tolerance"]


def test_every_stage_has_a_timeout_and_the_real_ones_add_up_to_six_minutes():
    assert set(gpu_smoke.TIMEOUTS) == set(gpu_smoke.DRY_TIMEOUTS) == set(STAGES)
    assert sum(gpu_smoke.TIMEOUTS.values()) <= 6 * 60


@pytest.mark.parametrize("argv, message", [
    (["--prepare", "--dry-run"], "one mode a run: --prepare, --dry-run were given together"),
    (["--make-reference", "--dry-run"], "one mode a run: --make-reference, --dry-run were given together"),
    (["--prepare", "--steps", "100"], "--steps does not apply to --prepare"),
    (["--make-reference", "--timeout-scale", "2", "--log", "smoke.log"],
     "--log, --timeout-scale do not apply to --make-reference"),
    (["--dry-run", "--steps", "100"], "--steps does not apply to --dry-run"),
    (["--dry-run", "--steps", str(gpu_smoke.STEPS)], "--steps does not apply to --dry-run"),  # at its default too
    (["--steps", "1"], "argument --steps: expected a whole number in [2, inf], got"),
    (["--make-reference", "--steps", "0"], "argument --steps: expected a whole number in [2, inf], got"),
    (["--timeout-scale", "0"], "argument --timeout-scale: expected a finite number in (0, inf], got"),
    (["--timeout-scale", "nan"], "argument --timeout-scale: expected a finite number in (0, inf], got"),
])
def test_an_option_the_mode_would_not_read_or_a_value_out_of_range_is_refused(argv, message, capsys):
    """Before anything runs: --make-reference --steps 1 used to train for nothing and end in a traceback (an
    evaluation every 0 steps), and --dry-run --steps 100 ran its own 6 steps."""
    with pytest.raises(SystemExit) as exit_info:
        gpu_smoke.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "Traceback" not in err, err
