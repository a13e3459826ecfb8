"""`python -m ctx_tf.train`: fail-fast errors (non-zero exit, nothing written) and the demo."""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

DEMO_GIN = str(REPO_ROOT / "gin" / "demo.gin")
CTX_GIN = str(REPO_ROOT / "gin" / "ctx.gin")
# TensorFlow's C++ log lines and gin's "Path not found" lines, which a quiet run must not show.
TF_OR_GIN_LOG_LINE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages|.*Path not found)",
                                re.MULTILINE)


def run_cli(args, tmp_path, timeout=300, cwd=None):
    env = dict(os.environ, CTX_TF_CACHE=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-m", "ctx_tf.train"] + args, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd or tmp_path, env=env)


def outputs(tmp_path):
    return dict(ckpt=tmp_path / "out" / "ckpt", summaries=tmp_path / "out" / "summaries")


def flags(tmp_path):
    o = outputs(tmp_path)
    return [f"--train_checkpoint_dir={o['ckpt']}", f"--summary_dir={o['summaries']}"]


def test_unknown_gin_binding_fails_before_anything_is_written(tmp_path):
    proc = run_cli([f"--gin_config={DEMO_GIN}", "--gin_bindings=Trainer.num_updatez = 5"]
                   + flags(tmp_path), tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1].startswith("ctx_tf.train: error: gin configuration: ")
    assert "Trainer.num_updatez" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_missing_records_root_fails_fast(tmp_path):
    missing = tmp_path / "no_records"
    proc = run_cli([f"--gin_config={CTX_GIN}", f"--records_root_dir={missing}"]
                   + flags(tmp_path), tmp_path)
    assert proc.returncode == 2
    assert f"--records_root_dir={missing} is not a directory" in proc.stderr
    assert not (tmp_path / "out").exists()
    missing.mkdir()
    proc = run_cli([f"--gin_config={CTX_GIN}", f"--records_root_dir={missing}"]
                   + flags(tmp_path), tmp_path)
    assert proc.returncode == 2
    assert "unknown source 'ilsvrc_2012': no " in proc.stderr
    assert "(benchmark.train_datasets)" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_unwritable_checkpoint_dir_fails_fast(tmp_path):
    from ctx_tf.data import demo

    records = demo.ensure_demo_source(cache_dir=tmp_path / "records", print_fn=lambda m: None,
                                      num_train_classes=6, num_valid_classes=5,
                                      num_test_classes=5, images_per_class=4, image_size=16)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    proc = run_cli([f"--gin_config={DEMO_GIN}", f"--records_root_dir={records}",
                    f"--train_checkpoint_dir={blocker / 'ckpt'}",
                    f"--summary_dir={tmp_path / 'summaries'}"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        f"ctx_tf.train: error: --train_checkpoint_dir={blocker / 'ckpt'} lies under {blocker}, "
        "which is a file, not a folder; name a folder")
    assert not (tmp_path / "summaries").exists()


@pytest.mark.slow
def test_demo_end_to_end_beats_the_raw_pixel_baseline(tmp_path):
    bindings = ["Trainer.num_updates = 80", "Trainer.validate_every = 40",
                "Trainer.checkpoint_every = 40", "Trainer.log_every = 20",
                "Trainer.num_eval_episodes = 20", "final_test.num_episodes = 60"]
    proc = run_cli([f"--gin_config={DEMO_GIN}"] + [f"--gin_bindings={b}" for b in bindings],
                   tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "Generating the demo source" in out
    assert "Sharding callback" not in out + proc.stderr  # TensorFlow's per-save INFO line
    assert f"Checkpoints: {tmp_path / 'runs' / 'demo' / 'checkpoints'}" in out
    model = re.search(r"CrossTransformerLearner: ([\d.]+) ± ([\d.]+) %", out)
    baseline = re.search(r"nearest centroid on raw pixels: ([\d.]+) ± ([\d.]+) %", out)
    assert model and baseline, out
    model_acc, model_ci = float(model.group(1)), float(model.group(2))
    base_acc, base_ci = float(baseline.group(1)), float(baseline.group(2))
    print(f"demo: CTX {model_acc} +- {model_ci} %, raw-pixel baseline {base_acc} +- {base_ci} %")
    assert model_acc - model_ci > base_acc + base_ci, out
    ckpt = tmp_path / "runs" / "demo" / "checkpoints"
    full = json.loads((ckpt / "final_test" / "results.json").read_text())
    results = full["sources"]["demo_glyphs"]
    assert results["num_episodes"] == 60 and results["mean"] * 100 == pytest.approx(model_acc, abs=0.01)
    assert len(results["episodes"]) == 60
    assert sum(e["accuracy"] for e in results["episodes"]) / 60 == pytest.approx(results["mean"], abs=1e-6)
    assert sum(e["floor_accuracy"] for e in results["episodes"]) / 60 == pytest.approx(results["floor_mean"], abs=1e-6)
    assert full["model"]["learner"] == "CrossTransformerLearner"
    assert full["training"]["num_updates"] == 80 and full["training"]["train_seconds"] > 0
    assert full["protocol"]["seed"] == 5678 and results["seconds"] > 0
    for name in ("episodes.csv", "results.md", "results.png"):
        assert (ckpt / "final_test" / name).exists()
    assert (ckpt / "operative_config.gin").exists()
    assert "Trainer.num_updates = 80" in (ckpt / "operative_config.gin").read_text()
    manifest = json.loads((ckpt / "run_manifest.json").read_text())
    assert manifest["records_root_dir"] == str(tmp_path / "cache" / "demo")
    assert manifest["demo_source"] is True and manifest["eval_datasets"] == ["demo_glyphs"]
    assert (manifest["seed"], manifest["image_size"]) == (0, 32)
    assert manifest["final_test"] == dict(num_episodes=60, seed=5678, enabled=True)
    assert manifest["gin_config"] == [DEMO_GIN] and manifest["gin_bindings"] == bindings
    assert TF_OR_GIN_LOG_LINE.search(proc.stderr) is None, proc.stderr

    # The run knows its inputs: evaluating its best checkpoint needs no other flag.
    env = dict(os.environ, CTX_TF_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run(
        [sys.executable, "-m", "ctx_tf.evaluate", "--checkpoint=best",
         f"--train_checkpoint_dir={ckpt}", "--num_episodes=60", "--seed=5678"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stdout[-3000:] + proc.stderr[-3000:]
    again = json.loads((ckpt / "evaluation" / "test_seed5678" / "results.json").read_text())
    assert again["sources"]["demo_glyphs"]["mean"] == pytest.approx(results["mean"], abs=1e-6)


@pytest.mark.compat
@pytest.mark.parametrize("name, decay_every, num_updates, simclr", [
    ("ctx.gin", 2000, 100000, 0.0), ("ctx_simclr.gin", 4000, 400000, 0.5)])
def test_ctx_gin_files_resolve_to_the_official_values(name, decay_every, num_updates, simclr,
                                                      clean_gin):
    import gin

    from ctx_tf import cli
    from ctx_tf.training import episodes as episodes_lib
    from ctx_tf.data.sampling import EpisodeDescriptionConfig

    cli.parse_gin([str(REPO_ROOT / "gin" / name)], [])
    q = gin.query_parameter
    assert episodes_lib.benchmark() == (["ilsvrc_2012"], ["ilsvrc_2012"])
    assert (q("Trainer.num_updates"), q("Trainer.decay_every")) == (num_updates, decay_every)
    assert q("Trainer.learning_rate") == 0.0006
    assert q("Trainer.decay_rate") == 0.915193802145601
    assert q("Trainer.normalized_gradient_descent") and q("Trainer.decay_learning_rate")
    assert q("Trainer.distribute") is True
    assert q("DataConfig.image_height") == 224
    assert (q("resnet34.max_stride"), q("resnet34.deeplab_alignment")) == (16, False)
    assert q("bn.use_ema") is True
    assert q("weight_decay/macro.value") == 0.0000885787420909229
    with gin.config_scope("train"):
        train_config = gin.get_configurable(EpisodeDescriptionConfig)()
    eval_config = gin.get_configurable(EpisodeDescriptionConfig)()
    assert train_config.ignore_hierarchy_probability == 0.5
    assert train_config.simclr_episode_fraction == simclr
    assert eval_config.ignore_hierarchy_probability == 0.0
    assert eval_config.simclr_episode_fraction == 0.0
    assert eval_config.num_ways is None and eval_config.max_support_set_size == 500


OMNIGLOT_GINS = {"omniglot_protonet.gin": ("PrototypicalNetworkLearner", 0.0),
                 "omniglot_ctx.gin": ("CrossTransformerLearner", 0.0),
                 "omniglot_ctx_simclr.gin": ("CrossTransformerLearner", 0.5)}


@pytest.mark.compat
@pytest.mark.parametrize("name", sorted(OMNIGLOT_GINS))
def test_omniglot_gin_files_differ_only_in_the_learner(name, clean_gin):
    import gin

    from ctx_tf import cli
    from ctx_tf.training import episodes as episodes_lib
    from ctx_tf.data.sampling import EpisodeDescriptionConfig
    from ctx_tf.evaluation import protocol

    learner, simclr = OMNIGLOT_GINS[name]
    cli.parse_gin([str(REPO_ROOT / "gin" / name)], [])
    q = gin.query_parameter
    assert episodes_lib.benchmark() == (["omniglot"], ["omniglot"])
    assert q("Trainer.train_learner_class").selector == learner
    assert q("Trainer.eval_learner_class").selector == learner
    assert q("Learner.embedding_fn").selector == "four_layer_convnet"
    assert q("DataConfig.image_height") == 42
    assert (q("Trainer.num_updates"), q("Trainer.learning_rate")) == (1200, 0.002)
    assert q("Trainer.normalized_gradient_descent") and q("bn.use_ema")
    assert q("final_test.num_episodes") == 600
    with gin.config_scope("train"):
        train_config = gin.get_configurable(EpisodeDescriptionConfig)()
    eval_config = gin.get_configurable(EpisodeDescriptionConfig)()
    assert train_config.simclr_episode_fraction == simclr
    assert (train_config.max_ways_upper_bound, train_config.max_num_query,
            train_config.max_support_set_size) == (20, 5, 100)
    # Test episodes follow the official protocol exactly.
    assert protocol.is_official_config(eval_config)
    assert eval_config.simclr_episode_fraction == 0.0


@pytest.mark.slow
def test_ctx_learns_on_official_omniglot_records(tmp_path):
    """Real Omniglot as written by the official converter: a short CTX run of
    gin/omniglot_ctx.gin (bi-level train episodes, official test episodes) beats the raw-pixel
    floor on the same test episodes."""
    from tests.conftest import shared_path

    records = shared_path("data", "official_records")
    shared_path("data", "official_records", "omniglot", "dataset_spec.json")
    bindings = ["Trainer.num_updates = 40", "Trainer.validate_every = 40",
                "Trainer.checkpoint_every = 40", "Trainer.log_every = 10",
                "Trainer.num_eval_episodes = 10", "final_test.num_episodes = 30"]
    proc = run_cli([f"--gin_config={REPO_ROOT / 'gin' / 'omniglot_ctx.gin'}",
                    f"--records_root_dir={records}"] + flags(tmp_path)
                   + [f"--gin_bindings={b}" for b in bindings], tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "omniglot (train 883, valid 81, test 659 classes)" in proc.stdout
    full = json.loads((outputs(tmp_path)["ckpt"] / "final_test" / "results.json").read_text())
    results = full["sources"]["omniglot"]
    print(f"omniglot, 40 updates: CTX {results['mean']:.3f} +- {results['ci95']:.3f}, floor "
          f"{results['floor_mean']:.3f} +- {results['floor_ci95']:.3f}")
    assert results["num_episodes"] == 30 and full["model"]["learner"] == "CrossTransformerLearner"
    assert (results["mean"] - results["ci95"]
            > results["floor_mean"] + results["floor_ci95"]), results
