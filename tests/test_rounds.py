"""Training rounds: where a round continues from, the model-card log, bad input."""
from __future__ import annotations

import pytest
import torch

from lccodec.errors import LicError
from lccodec.models.hyperprior import HyperpriorModel
from lccodec.train.rounds import LOG_HEADING, RunFolder, append_log, log_row, start, train_argv
from lccodec.weights_io import identify, read_metadata, save_weights

SMALL = {"N": 16, "M": 24}


def _weights(path, manifest, **config):
    torch.manual_seed(0)
    model = HyperpriorModel(**SMALL, **config)
    save_weights(path, model, model.build_tables(), manifest)


def test_a_round_continues_from_checkpoint_then_recipe_weights_then_fresh(tmp_path):
    (tmp_path / "weights").mkdir()
    run = RunFolder("hyperprior", tmp_path / "runs")
    shipped = tmp_path / "weights" / "hyperprior.safetensors"
    _weights(shipped, {"steps": 4342})  # trained, but not with the recipe (no linear path)
    argv, origin = train_argv(run, "DATA", 170, 25, tmp_path)
    assert origin == "a fresh model" and "linear_path=true" in argv
    assert argv[argv.index("--schedule") + 1] == "constant" and "--stop-file" in argv
    _weights(shipped, {"steps": 900}, linear_path=True)
    argv, origin = train_argv(run, "DATA", 170, 25, tmp_path)
    assert argv[argv.index("--continue") + 1] == str(shipped) and "--config" not in argv
    run.checkpoint.mkdir(parents=True)
    (run.checkpoint / "checkpoint.json").write_text("{}")
    argv, origin = train_argv(run, "DATA", 170, 25, tmp_path)
    assert argv[argv.index("--resume") + 1] == str(run.checkpoint) and origin.startswith("local")


def test_start_refuses_a_folder_without_images(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LicError, match="no images"):
        start(RunFolder("hyperprior", tmp_path / "runs"), str(tmp_path / "empty"), 10, 2, tmp_path)
    with pytest.raises(LicError, match="cooldown-minutes must be shorter"):
        start(RunFolder("hyperprior", tmp_path / "runs"), str(tmp_path), 10, 12, tmp_path)
    assert not (tmp_path / "runs" / "hyperprior" / "train.pid").exists()


def test_training_log_rows_are_appended_to_the_model_card(tmp_path):
    card = tmp_path / "hyperprior.md"
    card.write_text("# Model card: hyperprior\n\nSome text.\n\n## Reproduce\n\nmore\n")
    row = {"points": {q: (0.1 * q, 25.0 + q) for q in range(1, 9)},
           "mbt2018-mean": 41.25, "WebP": -3.04, "AV1": None, "ceiling": 37.071}
    line = log_row(row, {"date": "2026-12-03T10:00:00Z", "steps": 12000, "device_minutes": 171.4}, "abcd1234")
    assert line == ("| 2026-12-03 | 12000 | 171 | 0.100 / 26.00 | 0.400 / 29.00 | 0.800 / 33.00 | 37.07 "
                    "| +41.2 % | -3.0 % | no overlap | `abcd1234` |")
    append_log(card, line)
    append_log(card, line.replace("12000", "24000"))
    text = card.read_text()
    assert text.count(LOG_HEADING) == 1 and text.startswith("# Model card: hyperprior\n\nSome text.")
    rows = [s for s in text.split(LOG_HEADING)[1].splitlines() if s.startswith("| 2026")]
    assert [r.split(" | ")[1] for r in rows] == ["12000", "24000"]
    assert text.endswith(line.replace("12000", "24000") + "\n")


def test_a_training_log_row_goes_into_the_first_table_under_the_heading(tmp_path):
    """A card may have prose and another table after the log: the row joins the log's table."""
    card = tmp_path / "hyperprior.md"
    log = "| date | steps |\n| --- | --- |\n| 2026-12-01 | 1 |\n"
    card.write_text(f"# Card\n\n{LOG_HEADING}\n\n{log}\nProse.\n\n| other | table |\n| --- | --- |\n| a | b |\n")
    append_log(card, "| 2026-12-02 | 2 |")
    text = card.read_text()
    assert "| 2026-12-01 | 1 |\n| 2026-12-02 | 2 |\n\nProse." in text
    assert text.endswith("| a | b |\n")



def test_a_fresh_context_round_warm_starts_from_the_hyperprior_and_trains_heads_only(tmp_path):
    run = RunFolder("context", tmp_path / "runs")
    (tmp_path / "weights").mkdir()
    with pytest.raises(LicError, match="warm starts from .*hyperprior.safetensors"):
        train_argv(run, "DATA", 170, 25, tmp_path)
    _weights(tmp_path / "weights" / "hyperprior.safetensors", {"steps": 900}, linear_path=True)
    argv, origin = train_argv(run, "DATA", 170, 25, tmp_path)
    assert "--heads-only" in argv and "--cache-analysis" in argv
    assert argv[argv.index("--init") + 1].endswith("weights/hyperprior.safetensors")
    assert "warm started" in origin
    run.checkpoint.mkdir(parents=True)
    (run.checkpoint / "checkpoint.json").write_text("{}")
    argv, _ = train_argv(run, "DATA", 170, 25, tmp_path)
    assert "--heads-only" in argv and "--init" not in argv and "--resume" in argv


def test_other_models_log_bd_rates_against_our_hyperprior(tmp_path):
    from lccodec.train.rounds import log_columns, log_curves

    curves = log_curves("context", tmp_path / "anchors", tmp_path)
    assert list(curves) == ["our hyperprior", "mbt2018-mean", "AV1"]
    assert curves["our hyperprior"] == tmp_path / "benchmarks/results/kodak-hyperprior.json"
    assert list(log_curves("hyperprior", tmp_path, tmp_path)) == ["mbt2018-mean", "WebP", "AV1"]
    row = {"points": {q: (0.1 * q, 25.0 + q) for q in range(1, 9)},
           "our hyperprior": -7.34, "mbt2018-mean": 12.0, "AV1": "n/a (no av1.json)"}
    line = log_row(row, {"date": "2026-12-04", "steps": 5, "device_minutes": 1}, "ab", tuple(curves))
    assert line.endswith("| -7.3 % | +12.0 % | n/a (no av1.json) | `ab` |")
    card = tmp_path / "context.md"
    append_log(card, line, log_columns(tuple(curves)))
    assert "| BD vs our hyperprior | BD vs mbt2018-mean | BD vs AV1 | weights_id |" in card.read_text()


def test_a_context_round_starts_again_when_the_hyperprior_transforms_changed(tmp_path):
    """Heads trained on other transforms are stale: continue the shipped context only while it
    holds the shipped hyperprior's transforms bit for bit, else warm start from the hyperprior."""
    from lccodec.models.context import ContextModel, init_from_hyperprior

    run = RunFolder("context", tmp_path / "runs")
    (tmp_path / "weights").mkdir()
    hyper = tmp_path / "weights" / "hyperprior.safetensors"
    _weights(hyper, {"steps": 900}, linear_path=True)
    context = init_from_hyperprior(ContextModel(**SMALL, linear_path=True), hyper)
    shipped = tmp_path / "weights" / "context.safetensors"
    save_weights(shipped, context, context.build_tables(), {"steps": 300})
    argv, origin = train_argv(run, "DATA", 170, 25, tmp_path)
    assert argv[argv.index("--continue") + 1] == str(shipped) and "--init" not in argv
    torch.manual_seed(1)
    newer = HyperpriorModel(**SMALL, linear_path=True)  # the hyperprior trained on: other transforms
    save_weights(hyper, newer, newer.build_tables(), {"steps": 1900})
    argv, origin = train_argv(run, "DATA", 170, 25, tmp_path)
    assert "--continue" not in argv and argv[argv.index("--init") + 1] == str(hyper)
    assert "trained on other transforms" in origin
    # a local checkpoint on the old transforms is moved aside, one on the new ones resumed
    from lccodec.train.checkpoint import save_checkpoint

    save_checkpoint(run.checkpoint, context, None, {"step": 5, "model": "context",
                                                    "model_config": {**SMALL, "linear_path": True}}, "full")
    argv, origin = train_argv(run, "DATA", 170, 25, tmp_path)
    assert "--resume" not in argv and "--init" in argv and "moved to" in origin
    assert (run.path / "ck.stale" / "checkpoint.json").is_file() and not run.checkpoint.exists()
    fresh = init_from_hyperprior(ContextModel(**SMALL, linear_path=True), hyper)
    save_checkpoint(run.checkpoint, fresh, None, {"step": 5, "model": "context",
                                                  "model_config": {**SMALL, "linear_path": True}}, "full")
    argv, origin = train_argv(run, "DATA", 170, 25, tmp_path)
    assert argv[argv.index("--resume") + 1] == str(run.checkpoint)


def test_a_fresh_reference_round_warm_starts_from_the_context_model(tmp_path):
    from lccodec.models.context import ContextModel, init_from_hyperprior

    run = RunFolder("reference", tmp_path / "runs")
    (tmp_path / "weights").mkdir()
    hyper = tmp_path / "weights" / "hyperprior.safetensors"
    _weights(hyper, {"steps": 900}, linear_path=True)
    context = init_from_hyperprior(ContextModel(**SMALL, linear_path=True), hyper)
    save_weights(tmp_path / "weights" / "context.safetensors", context, context.build_tables(), {"steps": 300})
    argv, origin = train_argv(run, "DATA", 170, 25, tmp_path)
    assert "--heads-only" in argv and "--cache-analysis" in argv
    assert argv[argv.index("--init") + 1].endswith("weights/context.safetensors")
    assert "hyper_residual=false" in argv  # the context model's entropy parameters, exactly
    assert argv[argv.index("--context-input") + 1] == "rounded"
    assert argv[argv.index("--rate-input") + 1] == "rounded" and argv[argv.index("--lr") + 1] == "0.0005"
    # a trained reference model on the same transforms is continued, at the recipe's lower lr
    from lccodec.models.reference import ReferenceModel, init_from_context

    trained = init_from_context(ReferenceModel(**SMALL, linear_path=True, hyper_residual=False),
                                tmp_path / "weights" / "context.safetensors")
    shipped = tmp_path / "weights" / "reference.safetensors"
    save_weights(shipped, trained, trained.build_tables(), {"steps": 700})
    argv, origin = train_argv(run, "DATA", 170, 25, tmp_path)
    assert argv[argv.index("--continue") + 1] == str(shipped) and argv[argv.index("--lr") + 1] == "0.0002"


def test_a_fresh_hierarchical_round_trains_its_own_layers_on_the_frozen_transforms(tmp_path):
    from lccodec.models.hierarchical import HierarchicalModel
    from lccodec.train.rounds import HYPER_PATH, TRANSFORMS

    run = RunFolder("hierarchical", tmp_path / "runs")
    (tmp_path / "weights").mkdir()
    _weights(tmp_path / "weights" / "hyperprior.safetensors", {"steps": 900}, linear_path=True)
    argv, origin = train_argv(run, "DATA", 170, 25, tmp_path)
    assert "--heads-only" not in argv and argv[argv.index("--freeze") + 1] == f"{TRANSFORMS},{HYPER_PATH}"
    assert argv[argv.index("--init") + 1].endswith("weights/hyperprior.safetensors")
    assert "K=288" in argv and "--init-also" not in argv  # h_s at the hyperprior's full width
    torch.manual_seed(0)
    light = HierarchicalModel(**SMALL, K=8, linear_path=True)
    save_weights(tmp_path / "weights" / "hierarchical.safetensors", light, light.build_tables(), {"steps": 700})
    argv, origin = train_argv(run, "DATA", 170, 25, tmp_path)
    assert argv[argv.index("--init-also") + 1].endswith("weights/hierarchical.safetensors")
    assert "K=288" in argv and "--continue" not in argv and "then from" in origin
    prefixes = argv[argv.index("--freeze") + 1].split(",")
    frozen = {n.split(".")[0] for n, _ in HierarchicalModel(**SMALL).named_parameters() if n.startswith(tuple(prefixes))}
    # y4 codes as the hyperprior does; HC's own layers train (not gain3, gain2, head3 ...)
    assert frozen == {"g_a", "g_s", "gain", "inv_gain", "h_a", "h_s", "z_density"}


def test_a_fresh_coarse2fine_round_keeps_the_hyperprior_h_s_at_full_width(tmp_path):
    run = RunFolder("coarse2fine", tmp_path / "runs")
    (tmp_path / "weights").mkdir()
    _weights(tmp_path / "weights" / "hyperprior.safetensors", {"steps": 900}, linear_path=True)
    argv, origin = train_argv(run, "DATA", 170, 25, tmp_path)
    assert "--heads-only" in argv and "K=288" in argv and argv[argv.index("--rate-input") + 1] == "rounded"
    assert argv[argv.index("--init") + 1].endswith("weights/hyperprior.safetensors")


def test_an_export_worse_than_the_shipped_weights_is_logged_but_not_installed(tmp_path, monkeypatch):
    import json

    from lccodec.train import rounds

    def curve(path, shift):
        bpp = [0.4, 0.6, 0.9, 1.3, 1.8, 2.4]
        path.write_text(json.dumps({"name": "hyperprior", "results": {
            "bpp": [b * shift for b in bpp], "psnr-rgb": [28.0, 30.0, 32.0, 34.0, 35.5, 36.5]}}))

    repo = tmp_path
    for d in ("weights", "benchmarks/results", "docs/models"):
        (repo / d).mkdir(parents=True)
    shipped_json = repo / "benchmarks" / "results" / "kodak-hyperprior.json"
    curve(shipped_json, 1.0)
    _weights(repo / "weights" / "hyperprior.safetensors", {"steps": 900}, linear_path=True)
    shipped_bytes = (repo / "weights" / "hyperprior.safetensors").read_bytes()
    run = RunFolder("hyperprior", repo / "runs")
    run.path.mkdir(parents=True)
    torch.manual_seed(5)
    newer = HyperpriorModel(**SMALL, linear_path=True)
    save_weights(run.export, newer, newer.build_tables(), {"steps": 1800})
    shift = {"value": 1.1}

    def fake_measure(run_, kodak, anchors, out_json, threads=2, curves=None):
        curve(out_json, shift["value"])
        return {"points": {q: (0.1 * q, 25.0 + q) for q in range(1, 9)}}

    monkeypatch.setattr(rounds, "measure_kodak", fake_measure)
    monkeypatch.chdir(repo)
    out = rounds.finish(run, "KODAK", repo / "anchors", repo)  # 10 % more bits: kept out
    assert "not installed" in out and "+10.0 %" in out
    assert (repo / "weights" / "hyperprior.safetensors").read_bytes() == shipped_bytes
    assert json.loads(shipped_json.read_text())["results"]["bpp"][0] == 0.4
    card = (repo / "docs" / "models" / "hyperprior.md").read_text()
    assert "(not shipped: +10.0 % against the shipped weights)" in card
    shift["value"] = 0.9  # 10 % fewer bits: installed, with its results
    out = rounds.finish(run, "KODAK", repo / "anchors", repo)
    assert "not installed" not in out
    installed = repo / "weights" / "hyperprior.safetensors"
    assert identify(installed) == identify(run.export)  # the same weights, their transforms in a part
    assert read_metadata(installed)["shared"] in [p.name for p in (repo / "weights").glob("transforms-*")]
    assert abs(json.loads(shipped_json.read_text())["results"]["bpp"][0] - 0.36) < 1e-9
