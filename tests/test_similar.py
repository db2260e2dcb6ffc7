"""Similar-image search (``explore.neighbours``, ``explore.vector_index``, ``xray-spark similar``): a
frame of the table finds itself first at distance 0, the exact search on Spark equals a brute force
over the table, the saved index answers the same while it is current and is not used once the
table changed, and the job works with an image id and with a detector file."""
import os

import numpy as np
import pyarrow.dataset as ds
import pytest
from explore_tables import build

from xray_spark.cli import main
from xray_spark.explore.neighbours import exact_top_k, search
from xray_spark.explore.vector_index import build_index, load_index
from xray_spark.io import detector_writers

K = 5


@pytest.fixture(scope="module")
def beamtime(spark, tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "explore"
    root.mkdir(exist_ok=True)
    return build(spark, root)


def table_vectors(url: str):
    table = ds.dataset(url[len("file://"):], partitioning="hive").to_table(columns=["image_id", "model_id", "embedding"])
    return table.column("model_id")[0].as_py(), table.column("image_id").to_pylist(), np.stack(
        table.column("embedding").to_numpy()).astype(np.float64)


def test_exact_search_on_spark_finds_the_query_first_and_equals_brute_force(spark, beamtime):
    model_id, ids, vectors = table_vectors(beamtime["embeddings"])
    for q in (3, 17):
        found = exact_top_k(spark, beamtime["embeddings"], model_id, vectors[q], K)
        assert found[0]["image_id"] == ids[q] and found[0]["distance"] == 0.0
        distances = np.sqrt(((vectors - vectors[q]) ** 2).sum(axis=1))
        order = sorted(range(len(ids)), key=lambda i: (distances[i], ids[i]))[:K]
        assert [r["image_id"] for r in found] == [ids[i] for i in order]
        assert [r["distance"] for r in found] == pytest.approx([distances[i] for i in order], abs=1e-12)
        assert all(set(r) >= {"run_id", "frame", "tag_names"} for r in found)


def test_the_index_answers_while_current_and_is_not_used_once_the_table_changed(spark, beamtime, tmp_path):
    model_id, ids, vectors = table_vectors(beamtime["embeddings"])
    facts = build_index(spark, beamtime["embeddings"], model_id, "flat")
    assert facts["rows"] == len(ids)
    index, why_not = load_index(beamtime["embeddings"], model_id, probe=4)
    assert why_not == "" and index is not None
    by_index = search(beamtime["embeddings"], model_id, vectors[7], K, spark_factory=lambda: pytest.fail("no Spark"))
    assert by_index.method.startswith("faiss flat index")
    exact = exact_top_k(spark, beamtime["embeddings"], model_id, vectors[7], K)
    assert [r["image_id"] for r in by_index.rows] == [r["image_id"] for r in exact]
    assert by_index.rows[0]["image_id"] == ids[7] and by_index.rows[0]["distance"] == pytest.approx(0.0, abs=1e-6)

    part = next(p for p in ds.dataset(beamtime["embeddings"][7:], partitioning="hive").files)
    os.utime(part, (1, 1))                                           # the table changed since the index
    try:
        assert "stale" in load_index(beamtime["embeddings"], model_id, probe=4)[1]
        fallback = search(beamtime["embeddings"], model_id, vectors[7], K, spark_factory=lambda: spark)
        assert fallback.method.startswith("exact on Spark (the index") and fallback.rows == exact
        with pytest.raises(ValueError, match=f"have {len(vectors[7])} numbers, the query 5"):
            search(beamtime["embeddings"], model_id, vectors[7][:5], K, spark_factory=lambda: spark)
        with pytest.raises(FileNotFoundError, match="stale"):
            search(beamtime["embeddings"], model_id, vectors[7], K, how="index")
    finally:
        build_index(spark, beamtime["embeddings"], model_id, "flat")


def cli(beamtime, tmp_path, *args):
    settings = [f"paths.root={tmp_path}", "spark.ui=false", "progress.console=never"]
    return main([*(a for s in settings for a in ("--set", s)), "similar", "--images", beamtime["images"],
                 "--embeddings", beamtime["embeddings"], "--k", str(K), *args])


def test_similar_job_with_an_image_id_prints_itself_first_and_draws_the_sheet(spark, beamtime, tmp_path, capsys):
    model_id, ids, _ = table_vectors(beamtime["embeddings"])
    build_index(spark, beamtime["embeddings"], model_id, "flat")
    png = tmp_path / "sheet.png"
    assert cli(beamtime, tmp_path, "--image", ids[2], "--output", str(png)) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "by faiss flat index" in lines[0] and lines[1].split()[:2] == ["rank", "image_id"]
    first = lines[2].split()
    assert first[0] == "1" and first[1] == ids[2] and float(first[4]) == 0.0
    assert len([line for line in lines if line[:4].strip().isdigit()]) == K
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_similar_job_with_a_detector_file_embeds_it_as_ingest_reads_it(spark, beamtime, tmp_path, capsys):
    counts = np.random.default_rng(0).poisson(50, (2, 300, 280)).astype(np.uint32)
    path = tmp_path / "run7" / "query.edf"
    path.parent.mkdir()
    detector_writers.write_edf(str(path), counts)
    assert cli(beamtime, tmp_path, "--image", str(path), "--frame", "1", "--search", "exact") == 0
    out = capsys.readouterr().out
    assert "nearest frames of query.edf frame 1, by exact on Spark (asked for)" in out
    assert len([line for line in out.splitlines() if line[:4].strip().isdigit()]) == K
    assert cli(beamtime, tmp_path, "--image", str(path), "--frame", "2") == 2
    assert "choose one with --frame 0..1" in capsys.readouterr().err


def test_unknown_image_id_is_a_clear_error(spark, beamtime, tmp_path, capsys):
    assert cli(beamtime, tmp_path, "--image", "no-such-frame") == 2
    err = capsys.readouterr().err
    assert "--image 'no-such-frame': no image of that id in the images table" in err
