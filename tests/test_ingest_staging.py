"""`ingest`'s tasks write the images table themselves (pyarrow, in the Python workers): the table
reads the same in Spark and Petastorm as one Spark writes, a retried task leaves no duplicate file,
a new file in an existing run is added beside that run's files without rewriting them, and a run
killed after adding files is exactly-once when run again, even with another task split."""
import json
import os
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import CLUSTER
from petastorm import make_batch_reader  # tf_dataset's reader
from pyarrow import fs as pafs
from test_ingest import GEOMETRY, frames

from xray_spark import schema
from xray_spark.config import load_config
from xray_spark.io import detector_writers, staging, tables
from xray_spark.io import partitions as parts
from xray_spark.io.archive import discover
from xray_spark.io.ingestion import ingest, settings_of
from xray_spark.io.rows import file_rows

RUN = "run 1:a%b"      # a run name Spark escapes in its directory name


def local(url: str) -> Path:
    return Path(urlparse(url).path)


@pytest.fixture()
def archive(tmp_path):
    root = tmp_path / "archive"
    run, other = root / "bt1" / RUN, root / "bt1" / "run2"
    run.mkdir(parents=True)
    other.mkdir(parents=True)
    detector_writers.write_edf(str(run / "a.edf"), frames(3, 1), GEOMETRY)
    detector_writers.write_cbf(str(run / "b.cbf"), frames(1, 2)[0], GEOMETRY)
    detector_writers.write_eiger(str(other / "scan_master.h5"), frames(2, 3), GEOMETRY, frames_per_file=1)
    config = load_config(None, CLUSTER + [f"paths.root={tmp_path / 'data'}", f"ingest.archive={root}",
                                          "tables.image_size=32", "spark.arrow_batch_rows=2"])
    return config, root


def table_files(config) -> dict[str, tuple[int, int]]:
    """{file relative to the images table: (inode, mtime_ns)} of its data files."""
    root = local(config.paths.url("images"))
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file() and p.name[0] not in "._"}


def image_rows(spark, url: str) -> list[dict]:
    rows = spark.read.schema(schema.spark_schema()).parquet(url).collect()
    return sorted((r.asDict() for r in rows), key=lambda r: r["image_id"])


def test_the_table_the_tasks_write_reads_as_spark_writes_it_in_spark_and_petastorm(spark, archive, tmp_path):
    config, root = archive
    url = config.paths.url("images")
    assert ingest(spark, config).written == 6
    rows = image_rows(spark, url)
    files, _ = discover(str(root), config.ingest.ignore, config.ingest.sidecar)
    settings = settings_of(config, str(root), {})
    expected = sorted((r for f in files for r in file_rows({**f.__dict__, "sidecar": "{}"}, settings)
                       if r["kind"] == "image"), key=lambda r: r["image_id"])
    assert rows == [{k: r[k] for k in schema.IMAGES.names} for r in expected]     # what the loop makes
    # the same rows written by Spark: same partition directories (Spark's escaping), same rows
    spark_url = config.paths.url("images") + "_spark"
    tables.write_table(spark.read.schema(schema.spark_schema()).parquet(url), spark_url, partition_by=parts.KEYS)
    dirs = {str(p.relative_to(local(url))) for p in local(url).glob("*/*")}
    assert dirs == {str(p.relative_to(local(spark_url))) for p in local(spark_url).glob("*/*")}
    assert "beamtime=bt1/run_id=run 1%3Aa%25b" in dirs
    assert image_rows(spark, spark_url) == rows
    for name in table_files(config):
        ids = pq.read_table(local(url) / name, columns=["image_id"])["image_id"].to_pylist()
        assert ids == sorted(ids) and name.split("/")[-1].startswith("part-")
    def petastorm_rows(table_url):
        with make_batch_reader(table_url, schema_fields=["image_id", "image", "tags", "run_id"], num_epochs=1,
                               reader_pool_type="dummy") as reader:
            return {i: (bytes(im), list(t), r) for b in reader for i, im, t, r in zip(b.image_id, b.image, b.tags, b.run_id)}

    read = petastorm_rows(url)
    assert read == petastorm_rows(spark_url)          # run_id as pyarrow reads a directory name, in both
    assert {i: v[:2] for i, v in read.items()} == {r["image_id"]: (r["image"], r["tags"]) for r in rows}


def test_partition_values_are_escaped_as_spark_escapes_them(spark):
    escape = spark.sparkContext._jvm.org.apache.spark.sql.catalyst.catalog.ExternalCatalogUtils.escapePathName
    every = "".join(map(chr, range(1, 0x300))) + " run:1/a%b é€ 😀"
    assert parts.escape_path_name(every) == escape(every)
    assert parts.partition_path(("bt1", RUN)) == "beamtime=bt1/run_id=run 1%3Aa%25b"


def test_row_groups_are_bounded_and_files_named_by_their_inputs(tmp_path):
    units = [{"path": "bt/r/x.edf", "size": 10, "mtime": 1.0, "sidecar": "{}"}]
    assert staging.group_stem(units) == staging.group_stem([dict(units[0])])
    assert staging.group_stem(units) != staging.group_stem([{**units[0], "mtime": 2.0}])
    image = np.random.default_rng(0).random((256, 256)).astype(np.float32)     # 320 kB a row
    records = [schema.image_record(image_id=f"id{i:02d}", source="archive", beamtime="bt", run_id="r", frame=i,
                                   image=image, mask=image > 2, tag_names=None, provenance={})
               for i in (5, 3, 9, 1, 7, 0, 2, 8)]
    for r in records:
        r["tags"] = r["tags"].tolist()
    settings = {"file_size_mb": 2, "row_group_size_mb": 1}
    batches = [pa.RecordBatch.from_pylist(records[i:i + 2], schema=schema.IMAGE_FILE) for i in range(0, 8, 2)]
    assert staging.write_images(batches, pafs.LocalFileSystem(), str(tmp_path / "p"), "part-x", settings) == 2
    ids = []
    for name, groups in (("part-x-000.zstd.parquet", 2), ("part-x-001.zstd.parquet", 1)):  # 3 + 3 rows, then 2
        meta = pq.ParquetFile(tmp_path / "p" / name).metadata
        assert meta.num_row_groups == groups
        assert all(meta.row_group(g).total_byte_size <= 2**20 for g in range(meta.num_row_groups))
        file_ids = pq.read_table(tmp_path / "p" / name)["image_id"].to_pylist()
        assert file_ids == sorted(file_ids)
        ids += file_ids
    assert sorted(ids) == sorted(r["image_id"] for r in records) and len(ids) == 8


def fails_once(index, tasks, settings, facts):
    """A read task that dies after writing its files on its first attempt (as a lost executor does)."""
    from pyspark import TaskContext

    staging.write_task(index, tasks, settings, facts)
    if TaskContext.get().attemptNumber() == 0:
        (local(settings["staging"]).parent / f"failed-{index}").touch()
        raise RuntimeError("executor lost after writing")


def test_a_retried_task_leaves_no_duplicate_file(spark, archive, monkeypatch):
    config, _ = archive
    monkeypatch.setattr(staging, "write_task", fails_once)
    result = ingest(spark, config)
    assert result.written == 6
    assert list(local(config.paths.url("images")).parent.glob("failed-*"))        # the tasks did fail once
    rows = image_rows(spark, config.paths.url("images"))
    assert len(rows) == len({r["image_id"] for r in rows}) == 6
    names = [n.rsplit("/", 1)[-1] for n in table_files(config)]
    assert len(names) == len(set(names)) and all(n.endswith("-000.zstd.parquet") for n in names)
    assert not [p for p in local(config.paths.url("images")).rglob(".*") if p.suffix == ".tmp"]


def test_a_new_file_in_an_existing_run_is_added_without_rewriting_the_runs_files(spark, archive):
    config, root = archive
    ingest(spark, config)
    before = table_files(config)
    detector_writers.write_tiff(str(root / "bt1" / RUN / "c.tif"), frames(2, 7))
    result = ingest(spark, config)
    assert result.paths == ("bt1/" + RUN + "/c.tif",) and result.written == 2
    after = table_files(config)
    assert {k: after[k] for k in before} == before                  # same files: same inodes and mtimes
    assert len(after) == len(before) + 1
    rows = image_rows(spark, config.paths.url("images"))
    assert len(rows) == len({r["image_id"] for r in rows}) == 8


def test_a_run_killed_after_adding_files_is_exactly_once_when_run_again(spark, archive, killed_at_commit, monkeypatch):
    config, root = archive
    url = config.paths.url("images")
    ingest(spark, config)
    run = root / "bt1" / RUN
    detector_writers.write_tiff(str(run / "c.tif"), frames(2, 7))
    with killed_at_commit():
        ingest(spark, config)
    assert len(image_rows(spark, url)) == 8                           # c.tif's images are in, uncommitted
    assert os.path.exists(local(parts.journal_url(url)))
    for i in range(3):                                                 # more files by the rerun: other tasks
        detector_writers.write_tiff(str(run / f"d{i}.tif"), frames(1, 20 + i))
    rerun = ingest(spark, config)
    assert rerun.read == 4 and rerun.written == 5
    rows = image_rows(spark, url)
    assert len(rows) == len({r["image_id"] for r in rows}) == 11
    assert not os.path.exists(local(parts.journal_url(url)))

    detector_writers.write_tiff(str(run / "e.tif"), frames(1, 30))             # killed after the commit
    monkeypatch.setattr(parts, "drop_journal", lambda url_: (_ for _ in ()).throw(KeyboardInterrupt("killed")))
    with pytest.raises(KeyboardInterrupt):
        ingest(spark, config)
    monkeypatch.undo()
    assert ingest(spark, config).read == 0
    rows = image_rows(spark, url)
    assert len(rows) == len({r["image_id"] for r in rows}) == 12
    assert json.loads(rows[0]["provenance"])["archive"] == str(root)


@pytest.mark.parametrize("files, cores, per_core, tasks", [(96, 2, 4, 8), (10, 2, 4, 3), (1, 2, 4, 1), (0, 2, 4, 1)])
def test_read_tasks_cover_every_file_once_in_path_order_slices_largest_first(files, cores, per_core, tasks):
    from xray_spark.io.ingestion import read_tasks

    work = [{"path": f"bt/run{i // 24}/f{i:03d}", "size": 1000 * (1 + i // 24)} for i in range(files)]
    planned = read_tasks(work, cores, per_core)
    assert len(planned) == tasks
    assert sorted(u["path"] for t in planned for u in t) == [u["path"] for u in work]   # each once
    for task in planned:                                     # a slice of the path order
        assert [u["path"] for u in task] == sorted(u["path"] for u in task)
    sizes = [sum(u["size"] for u in t) for t in planned]
    assert sizes == sorted(sizes, reverse=True)              # the most bytes start first
    assert max(len(t) for t in planned) - min(len(t) for t in planned) <= 1
