"""Every shipped config resolves to a valid experiment (train_main.py --dry_run), with the
family, sizes and data flags its name promises."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAINING_CONFIGS = sorted(p.name for p in (ROOT / "configs").glob("*.cfg")
                          if p.name != "adapt_writer.cfg")


def _dry_run(*flags):
    out = subprocess.run([sys.executable, "train_main.py", *flags, "--dry_run"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout[out.stdout.index("{"):])


@pytest.mark.parametrize("name", TRAINING_CONFIGS)
def test_training_configs_resolve(name):
    cfg = _dry_run(f"--flagfile=configs/{name}")
    family = cfg["model"]["family"]
    assert family in name.replace("emnist_char_cgan", "char_cgan") or name == "quickstart.cfg"
    if name.endswith("_cpu.cfg") or name == "quickstart.cfg":
        # Sized for a 2-core CPU (the full configs are width 1.0, batch 256).
        assert cfg["model"]["width"] <= 0.5 and cfg["train"]["batch_size"] == 64
    if family == "stylegan":
        assert cfg["data"]["build_params"] and ["split", "writer"] in cfg["data"]["build_params"]
        assert cfg["train"]["batch_size"] % cfg["train"]["style_group_size"] == 0
    assert cfg["runtime"]["model_dir"].startswith("runs/")
    # XLA per CPU for the convolution-heavy steps it speeds up; never for the stylegan (0.91x).
    assert cfg["runtime"]["jit_compile"] == ("auto" if family in ("style_cgan", "fewshot")
                                             else False)


def test_jit_compile_takes_a_bool_or_auto():
    """--jit_compile is a boolean flag (--jit_compile, --nojit_compile, =true/false) that also
    takes auto; anything else is refused by name."""
    for flag, want in (("--jit_compile", True), ("--nojit_compile", False),
                       ("--jit_compile=auto", "auto"), ("--jit_compile=false", False)):
        assert _dry_run("--flagfile=configs/quickstart.cfg", flag)["runtime"]["jit_compile"] == want
    out = subprocess.run([sys.executable, "train_main.py", "--flagfile=configs/quickstart.cfg",
                          "--jit_compile=on", "--dry_run"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0
    assert "--jit_compile=on: 'on' is not true, false or auto" in out.stderr


def test_run_eagerly_is_a_flag_and_refuses_an_xla_step():
    assert _dry_run("--flagfile=configs/quickstart.cfg")["runtime"]["run_eagerly"] is False
    assert _dry_run("--flagfile=configs/quickstart.cfg", "--run_eagerly",
                    "--jit_compile=auto")["runtime"]["run_eagerly"] is True
    out = subprocess.run([sys.executable, "train_main.py", "--flagfile=configs/quickstart.cfg",
                          "--run_eagerly", "--jit_compile", "--dry_run"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: --run_eagerly: an eager step is not XLA-compiled: drop --jit_compile"]


def test_a_dry_run_and_a_refused_flag_do_not_wait_for_tensorflow():
    """train_main's flags and config are TensorFlow-free: a dry run (and a refused flag) answer
    without importing it; the job module (hw_gan.cli.train_job) is what imports it."""
    probe = ("import sys\nfrom hw_gan.cli.train import entry\n"
             "try:\n    entry(['train_main.py', *sys.argv[1:]])\nexcept SystemExit as e:\n"
             "    print('exit', e.code, 'tensorflow' in sys.modules, file=sys.stderr)\n")
    for flags, code in ((["--flagfile=configs/quickstart.cfg", "--dry_run"], 0),
                        (["--flagfile=configs/quickstart.cfg", "--resolution=48"], 2),
                        (["--flagfile=configs/adapt_writer.cfg", "--dry_run"], 2)):
        out = subprocess.run([sys.executable, "-c", probe, *flags], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.stderr.strip().splitlines()[-1] == f"exit {code} False", out.stderr[-2000:]
    job = subprocess.run([sys.executable, "-c", "import sys, hw_gan.cli.train_job; "
                          "print('tensorflow' in sys.modules)"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert job.stdout.strip() == "True", job.stderr[-2000:]  # the probe can see an import


def test_adapt_config_needs_its_inputs():
    """adapt_writer.cfg sets --mode=adapt: without the writer and the base it names what is
    missing, one flag at a time; --writer_data without --mode=adapt is refused by name."""
    def run(*flags):
        return subprocess.run([sys.executable, "train_main.py", *flags, "--dry_run"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    out = run("--flagfile=configs/adapt_writer.cfg")
    assert out.returncode == 2 and "error: --writer_data: is required" in out.stderr
    out = run("--flagfile=configs/adapt_writer.cfg", "--writer_data=data/alice", "--init=runs/x")
    assert out.returncode == 2 and "error: --model_dir: is required" in out.stderr
    out = run("--flagfile=configs/adapt_writer.cfg", "--writer_data=data/alice", "--init=runs/x",
              "--model_dir=runs/alice")
    assert out.returncode == 0 and json.loads(out.stdout)["writer_data"] == "data/alice"
    out = run("--flagfile=configs/quickstart.cfg", "--writer_data=data/alice")
    assert out.returncode == 2 and "error: --writer_data: only with --mode=adapt" in out.stderr


@pytest.mark.parametrize("name", [n for n in TRAINING_CONFIGS if n.startswith("unipen_")])
def test_unipen_configs_train_on_letters_digits_and_symbols(name):
    cfg = _dry_run(f"--flagfile=configs/{name}")
    assert ["require_chars", "alnum+symbols"] in cfg["data"]["build_params"]


def test_a_dataset_built_without_the_required_chars_is_not_reused(tmp_path):
    """A data_dir built before (without the symbols) fails by name instead of training on it."""
    from data_pipeline import build
    from hw_gan import config as config_lib
    from hw_gan import experiment

    data = tmp_path / "data"
    build.build("simulated", str(data), {"num_writers": 2, "samples_per_char": 1, "image_size": 16,
                                         "charset": "abc"}, split="none", progress=False)
    cfg = config_lib.ExperimentConfig(data=config_lib.DataConfig(
        data_dir=str(data), build_source="ink",
        build_params=(("path", "x.npz"), ("require_chars", "abc.,"))))
    with pytest.raises(ValueError, match=r"--data_dir=.*data was built without '\.,', which "
                                         r"--build_param=require_chars=abc\., asks for"):
        experiment.ensure_dataset(cfg)


def _changed(before, after):
    """{(section, key): after's value} for every config field that differs (dry-run JSONs)."""
    return {(section, key): after[section][key] for section, values in before.items()
            if isinstance(values, dict) for key in values if values[key] != after[section][key]}


@pytest.mark.parametrize("recipe,steps", [("unipen_fewshot_cpu", (24000, 32000, 44000)),
                                          ("unipen_fewshot_fast_cpu", (12000, 16000, 22000))])
def test_the_fewshot_tuning_phases_resume_the_phase_before_with_a_few_changes(recipe, steps):
    """The tuning phases of both few-shot recipes (unipen_fewshot_cpu*.cfg, which made
    unipen_styles until the twenty-first session, and unipen_fewshot_fast_cpu*.cfg, which made
    the shipped one) are the phase before's config in the same run directory with a few
    training changes, all resumable."""
    from hw_gan import config as config_lib

    first = _dry_run(f"--flagfile=configs/{recipe}.cfg")
    tune = _dry_run(f"--flagfile=configs/{recipe}_tune.cfg")
    assert first["train"]["steps"] == steps[0]
    assert set(_changed(first, tune)) == {("train", "aux_writer_weight"),
                                          ("train", "style_ref_augment"), ("train", "steps")}
    assert (tune["train"]["aux_writer_weight"], tune["train"]["style_ref_augment"],
            tune["train"]["steps"]) == (1.0, 1.0, steps[1])
    assert config_lib.incompatible_changes(config_lib.ExperimentConfig.from_dict(first),
                                           config_lib.ExperimentConfig.from_dict(tune)) == []
    third = _dry_run(f"--flagfile=configs/{recipe}_tune2.cfg")
    assert set(_changed(tune, third)) == {("train", "aux_writer_weight"), ("train", "steps")}
    assert (third["train"]["aux_writer_weight"], third["train"]["steps"]) == (2.0, steps[2])
    assert config_lib.incompatible_changes(config_lib.ExperimentConfig.from_dict(tune),
                                           config_lib.ExperimentConfig.from_dict(third)) == []


def test_the_fast_fewshot_recipe_is_the_earlier_one_at_4x_the_learning_rate_in_half_the_steps():
    """unipen_fewshot_fast_cpu.cfg differs from unipen_fewshot_cpu.cfg only in the learning
    rates, the EMA ramp-up, the steps, the drawing clip and the run's names."""
    earlier = _dry_run("--flagfile=configs/unipen_fewshot_cpu.cfg")
    fast = _dry_run("--flagfile=configs/unipen_fewshot_fast_cpu.cfg")
    assert _changed(earlier, fast) == {
        ("train", "g_lr"): 0.0008, ("train", "d_lr"): 0.0008, ("train", "ema_rampup"): 0.05,
        ("train", "steps"): 12000, ("model", "untrained_style_clip"): 0.05,
        ("runtime", "model_dir"): "runs/unipen_fewshot_fast_cpu",
        ("runtime", "export_name"): "unipen_fewshot_fast_cpu"}
