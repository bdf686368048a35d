"""`aiop predict` on a hand-built OpGraph and the shipped checkpoint."""

from pathlib import Path

import pytest

from predictor import AIOP
from predictor.aiop import FeatureCache
from predictor.cli import main

from test_predictor import _synthetic, chain

SHIPPED = Path(__file__).resolve().parent.parent / "predictor" / "data" / "aiop_small.pt"


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


@pytest.mark.skipif(not SHIPPED.is_file(), reason="no shipped checkpoint")
def test_shipped_checkpoint_predicts():
    m = AIOP.load(SHIPPED)
    g = chain(["conv3", "relu", "conv1"], c=16, h=32)
    a, b = m.predict(g), m.predict(chain(["pool", "relu"], c=16, h=32))
    assert a == m.predict(g) and a != b
    assert set(m.pretrain_heads) >= {"nb201/cifar10"}
