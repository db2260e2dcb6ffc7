"""The notebooks: committed without outputs, one tagged parameters cell each, and executed end to
end with small parameters, papermill's way (a cell of injected values right after the tagged
one), in a scratch directory: 02 trains and writes the tables that 01 explores and the model that
03 labels a new beamtime with."""
import time

import fabio
import nbformat
import numpy as np
import pytest
import tifffile
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from test_deploy import ROOT

from xray_spark.io.expert_labels import read_labels

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LOCAL = ["spark.master=local[2]", "spark.driver_memory=2g", "spark.ui=false", "spark.shuffle_partitions=4",
         "progress.console=never", "horovod.start_timeout_s=300"]
SMALL = ["tables.image_size=64", "simulate.render_size=64", "simulate.images_per_run=16",
         "bof.patches_per_image=60", "bof.words=24", "bof.sample_size=6000", "bof.init_sample_size=1000",
         "bof.kmeans_max_iter=8", "bof.svm_c=[1.0, 10.0]", "bof.svm_gamma_scales=[1.0]", "bof.cv_folds=2",
         "bof.kernel_blocks=2", "cnn.input_size=32", "cnn.epochs=1", "cnn.warmup_epochs=0", "cnn.batch_size=16",
         "cnn.shuffle_buffer=64"]


def parameters_index(nb) -> int:
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    return tagged[0]


def run_notebook(name: str, cwd, **parameters):
    """Execute notebooks/<name>.ipynb in ``cwd`` with ``parameters``; returns (notebook, seconds)."""
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    injected = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in parameters.items()))
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(parameters_index(nb) + 1, injected)
    started = time.monotonic()
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    print(f"{name}: {time.monotonic() - started:.0f} s")
    return nb


def outputs(nb, kind: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if kind in o.get("data", {})]


def test_committed_notebooks_carry_no_outputs():
    assert [p.stem for p in NOTEBOOKS] == ["01_explore_beamtime", "02_train_and_evaluate", "03_label_new_beamtime"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        parameters_index(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip the outputs"
            source = cell.source
            assert "/work/" not in source and "/home/" not in source and "/tmp/" not in source, path.name


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """02 with small sizes: its tables and models, under one scratch root."""
    cwd = tmp_path_factory.mktemp("notebooks")
    root = cwd / "data"
    nb = run_notebook("02_train_and_evaluate", cwd, conf=str(ROOT / "conf/local.yaml"), root=str(root),
                      n_train=96, n_test=48, overrides=LOCAL + SMALL)
    return cwd, root, nb


def test_train_and_evaluate_shows_both_tables_and_the_curves(trained):
    cwd, root, nb = trained
    table = "".join(o["data"]["text/markdown"] for o in outputs(nb, "text/markdown"))
    assert "AP bag of features (Table I)" in table and "AP CNN (Table II)" in table and "**mAP**" in table
    assert "Label set: top17 (17 labels" in table and "test images: 48" in table
    assert outputs(nb, "image/png"), "the precision-recall figure"
    assert (root / "models/cnn/manifest.json").is_file() and (root / "predictions/cnn").is_dir()


def test_explore_beamtime_draws_every_view(trained):
    cwd, root, _ = trained
    nb = run_notebook("01_explore_beamtime", cwd, conf=str(ROOT / "conf/local.yaml"), root=str(root),
                      images=str(root / "images_test"), predictions=str(root / "predictions/cnn"),
                      tag="Beam off image", gallery_size=4, review_count=4, overrides=LOCAL + SMALL)
    counts = outputs(nb, "text/html")[0]["data"]["text/html"]
    assert "run_id" in counts and "images" in counts
    # tag distribution, gallery, least sure, q-space view; the clusters' composition, the embeddings' map
    assert len(outputs(nb, "image/png")) == 6
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "images tagged 'Beam off image'" in text
    assert "3 clusters (configured)" in text and "Beamtime atlas of" in text
    page = next((root / "reports/atlas").glob("*/index.html"))
    assert "Cluster C2:" in page.read_text()


def test_a_missing_table_stops_the_first_cell_with_a_clear_message(tmp_path):
    with pytest.raises(CellExecutionError) as err:
        run_notebook("01_explore_beamtime", tmp_path, conf=str(ROOT / "conf/local.yaml"), images="no/such/table")
    assert "images = 'no/such/table': no such file or table" in str(err.value)
    assert "build_session" not in str(err.value)  # stopped before Spark


def write_archive(archive):
    """A tiny beamtime in two formats: rings on a background, and one empty (corrupt) file."""
    rng = np.random.default_rng(0)
    rows, cols = np.indices((96, 96))
    radius = np.hypot(rows - 40, cols - 52)
    for run in ("run1", "run2"):
        (archive / "bt1" / run).mkdir(parents=True)
        for i, ring in enumerate((18.0, 30.0)):
            counts = rng.poisson(20 + 5000 * np.exp(-0.5 * ((radius - ring) / 1.5) ** 2)).astype(np.int32)
            tifffile.imwrite(archive / "bt1" / run / f"frame{i}.tif", counts)
        fabio.edfimage.EdfImage(data=rng.poisson(30, (96, 96)).astype(np.int32)).write(
            str(archive / "bt1" / run / "dark.edf"))
    (archive / "bt1" / "run2" / "broken.tif").write_bytes(b"")


def test_label_new_beamtime_writes_the_reviewed_labels(trained):
    cwd, root, _ = trained
    archive = cwd / "archive"
    write_archive(archive)
    csv_path = cwd / "new" / "expert_labels.csv"
    corrections = {"bt1/run1/frame0.tif": ["Ring: Isotropic"], "bt1/run2/dark.edf": []}
    nb = run_notebook("03_label_new_beamtime", cwd, conf=str(ROOT / "conf/local.yaml"), archive=str(archive),
                      root=str(cwd / "new"), model=str(root / "models/cnn"), labels_csv=str(csv_path),
                      review_count=3, corrections=corrections, overrides=LOCAL + SMALL)
    assert read_labels(str(csv_path)) == corrections
    text = "".join(str(o.get("data", {}).get("text/plain", "")) + o.get("text", "")
                   for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "'quarantined_files': 1" in text and "'written': 6" in text
    assert len(outputs(nb, "image/png")) == 1  # the review gallery
