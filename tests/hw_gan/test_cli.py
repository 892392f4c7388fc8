"""The `hwgan` command dispatches to the pipeline and export tools with their errors intact."""

from hw_gan import cli


def test_help_and_unknown_command(capsys):
    assert cli.main([]) == 0 and "hwgan build" in capsys.readouterr().out
    assert cli.main(["frobnicate"]) == 2


def test_build_verify_and_sample_errors(tmp_path, capsys):
    out = tmp_path / "sim"
    assert cli.main(["build", "--source=simulated", f"--out={out}", "--quiet",
                     "--source_param", "num_writers=2", "--source_param", "samples_per_char=1",
                     "--source_param", "charset=abc"]) == 0
    assert '"writers": 2' in capsys.readouterr().out
    assert cli.main(["verify", str(out)]) == 0
    assert cli.main(["sample", "--model", str(tmp_path / "none"), "--out",
                     str(tmp_path / "g.png")]) == 2
    assert "none" in capsys.readouterr().err and not (tmp_path / "g.png").exists()
