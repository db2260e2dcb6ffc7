import json

from bench.harness import record, timed_rate


def test_record_writes_figure_baseline_ratio_and_machine(tmp_path):
    calls = []

    def fast():
        calls.append("f")
        return 10

    result = record("unit", figure=lambda: 4.0, baseline=timed_rate(fast), unit="items/s",
                    sizes={"n": 10}, repeats=3, target="ratio >= 1", results_dir=tmp_path)
    written = json.loads((tmp_path / "unit.json").read_text())
    assert written["figure"] == 4.0 and len(written["baselines"]) == 3 and len(calls) == 3
    assert written["ratio"] == result["ratio"] == 4.0 / written["baseline"]
    assert written["machine"]["cores"] >= 1 and written["machine"]["libraries"]["numpy"] == "1.26.4"
    assert written["sizes"] == {"n": 10}
