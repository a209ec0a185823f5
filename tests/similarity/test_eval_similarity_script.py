import json
import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "eval_similarity.py"


def test_script_reports_every_provider(tmp_path, capsys):
    out = tmp_path / "figures.json"
    main = runpy.run_path(str(SCRIPT))["main"]
    main(
        [
            "--tracks",
            "synthetic",
            "--synthetic-n",
            "512",
            "--providers",
            "labels,findings",
            "--json",
            str(out),
        ]
    )
    (result,) = json.loads(out.read_text())
    assert result["track"] == "synthetic" and result["held_out_reports"] == 256
    assert result["labeler_exact_set_accuracy"] >= 0.9
    names = set(result["providers"])
    assert names == {"labels [dataset labels]", "labels [labeler]", "findings"}
    findings = result["providers"]["findings"]
    assert set(findings) == {"0.9", "calibrated"}
    assert findings["0.9"]["precision"] >= 0.9 and findings["0.9"]["recall"] >= 0.7
    assert "findings" in capsys.readouterr().out
