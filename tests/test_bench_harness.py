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


def test_python_m_bench_lists_benchmarks_and_refuses_arguments_a_benchmark_does_not_take():
    """``python -m bench NAME ARGS``: the arguments go to that benchmark (``real MODEL_DIR`` scores
    that model, not the shipped one); one it cannot take is refused before anything runs."""
    import subprocess
    import sys

    def run(*args):
        return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, timeout=120)

    listed = run("--help")
    assert listed.returncode == 0 and "real_tagged" in listed.stdout
    refused = run("svm", "extra")
    assert refused.returncode != 0 and "takes 0 positional argument(s)" in refused.stderr
    assert "got ['a', 'b']" in run("real", "a", "b").stderr            # real takes one: MODEL_DIR
    assert "no benchmark 'nothing'" in run("nothing").stderr
