"""`aiop predict` on a hand-built OpGraph and the shipped checkpoint."""

from pathlib import Path

import pytest

from predictor import AIOP
from predictor.aiop import FeatureCache
from predictor.cli import main

from test_predictor import _synthetic, chain

SHIPPED = Path(__file__).resolve().parent.parent / "predictor" / "data" / "aiop.pt"


def test_cli_predict_matches_api(tmp_path, capsys):
    recs, graphs = _synthetic(30, 1)
    m = AIOP.pretrain([r for r in recs if r.family == "src"], FeatureCache(graphs), lambda r: ("syn", r.arch),
                      epochs=2, seed=0, hidden=16, layers=2, progress=False)
    ck, gj = tmp_path / "m.pt", tmp_path / "g.json"
    m.save(ck)
    g = chain(["conv3", "relu", "pool"])
    gj.write_text(g.to_json())
    assert main(["predict", "--checkpoint", str(ck), "--opgraph", str(gj), "--task", "src/t"]) == 0
    assert float(capsys.readouterr().out) == pytest.approx(m.predict(g, task="src/t"), rel=1e-5)
    with pytest.raises(FileNotFoundError, match="aiop pretrain"):
        AIOP.load(tmp_path / "missing.pt")


def test_shipped_checkpoint_predicts():
    m = AIOP.load(SHIPPED)
    g = chain(["conv3", "relu", "conv1"], c=16, h=32)
    a, b = m.predict(g), m.predict(chain(["pool", "relu"], c=16, h=32))
    assert a == m.predict(g) and a != b
    assert set(m.pretrain_heads) >= {"nb201/cifar10"}


def test_shipped_checkpoint_ranks_its_training_family():
    """The shipped model must rank NB-201 cifar10 architectures (it was trained on them)."""
    from predictor import data, graphs
    from predictor.model import spearman

    recs = [r for r in data.subsample(data.load_family("nb201"), 25, seed=5) if r.task == "cifar10"]
    m = AIOP.load(SHIPPED)
    g = {graphs.graph_key(r.family, r.task, r.arch): graphs.network_graph(r.family, r.task, r.arch) for r in recs}
    feats = FeatureCache(g)
    s = m.scores([feats.item(graphs.graph_key(r.family, r.task, r.arch)) for r in recs], "nb201/cifar10")
    assert spearman(s, [r.label for r in recs]) > 0.6


@pytest.mark.parametrize("argv", [["evaluate", "--checkpoint", str(SHIPPED), "--task", "tnb101/class_scene"],
                                  ["reduce", "--checkpoint", str(SHIPPED), "--task", "nb201/cifar10",
                                   "--start", "[2, 2, 3, 2, 0, 2]"]])
def test_missing_data_file_is_one_clear_line(argv, tmp_path, monkeypatch):
    monkeypatch.setenv("AIOP_DATA", str(tmp_path))
    with pytest.raises(SystemExit, match=f"aiop {argv[0]}: data file .*not found.*AIOP_DATA"):
        main(argv)


def test_cli_pretrain_leaves_excluded_tasks_out(tmp_path):
    out = tmp_path / "lto.pt"
    assert main(["pretrain", "--out", str(out), "--families", "tnb101", "--exclude-tasks", "tnb101/jigsaw",
                 "--per-family", "3", "--epochs", "1"]) == 0
    heads = set(AIOP.load(out).pretrain_heads)
    assert "tnb101/jigsaw" not in heads and {"tnb101/class_scene", "tnb101/normal"} <= heads
    with pytest.raises(SystemExit, match="--exclude-tasks tnb101/jigsw: no such task"):
        main(["pretrain", "--out", str(out), "--families", "tnb101", "--exclude-tasks", "tnb101/jigsw",
              "--per-family", "3", "--epochs", "1"])
