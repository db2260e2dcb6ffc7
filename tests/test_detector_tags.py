"""The detector tags a real file states (``labelling.detector_tags``) replace the network's scores
of them in `predict`; a generated image, or a file that does not say, keeps the network's."""
import json

import numpy as np
import pyarrow as pa
import pytest
from marccd_files import write_marccd
from test_real_frames import CEO2, GEOMETRY, GISAXS, ROOT, archive_rows

from xray_spark import modeldir
from xray_spark.config import load_config
from xray_spark.explore.embeddings import EmbeddingSettings, PenultimateLayer, embed_rows
from xray_spark.labelling.detector_tags import (
    MARCCD,
    OTHER,
    PHOTONICS_CCD,
    named_detector,
    stated_detector,
    with_stated_detector,
)
from xray_spark.labelling.scoring import score_batch
from xray_spark.paths import SHIPPED_MODELS


@pytest.mark.parametrize("reader, detector, kind", [
    ("MarccdImage", None, MARCCD),                 # the MarCCD frame header
    ("Mar345Image", None, OTHER),                  # a mar345 image plate: round, but not a CCD
    ("GeImage", None, OTHER),
    ("TifImage", "Pilatus 1M", OTHER),             # pyFAI's registry: Dectris
    ("CbfImage", "PILATUS 12M", OTHER),            # a Pilatus size pyFAI lacks: the family
    ("Hdf5Image", "Eiger2 CdTe 16M", OTHER),
    ("Hdf5Image", "Rayonix MX225", MARCCD),        # pyFAI's registry: Rayonix / Mar Research
    ("EdfImage", "mar345", OTHER),                 # Mar Research's image plate, not its CCD
    ("TifImage", "Photonic Science FDI", PHOTONICS_CCD),
    ("TifImage", None, None),                      # a plain TIFF says nothing
    ("EdfImage", "0", None),                       # nor does a junk name
])
def test_a_file_states_its_detector_by_its_reader_or_the_name_in_its_header(reader, detector, kind):
    assert stated_detector(json.dumps({"reader": reader, "path": "x"}), detector) == kind


def test_a_generated_image_states_no_detector_whatever_its_detector_column_says():
    assert stated_detector(json.dumps({"generator": "xray_spark", "seed": 1}), "Pilatus 1M") is None
    assert named_detector("Pilatus 1M") == OTHER


def test_the_stated_detector_sets_only_the_detector_tags():
    tags = ["Thin film", "MarCCD", "Photonics CCD"]
    scores = np.array([0.25, 0.5, 0.75], np.float32)
    np.testing.assert_array_equal(with_stated_detector(scores, tags, MARCCD), [0.25, 1.0, 0.0])
    np.testing.assert_array_equal(with_stated_detector(scores, tags, OTHER), [0.25, 0.0, 0.0])
    np.testing.assert_array_equal(with_stated_detector(scores, tags, None), scores)
    np.testing.assert_array_equal(with_stated_detector(scores[:1], tags[:1], MARCCD), scores[:1])


def test_predict_takes_the_detector_tags_a_real_file_states(tmp_path):
    """Real rows through the executors' scoring function with the shipped model: the Pilatus
    frames get MarCCD and Photonics CCD 0, a MarCCD frame MarCCD 1 (and the tag), every other
    score is the network's; the same Pilatus pixels with a generator's provenance keep the network's."""
    run = tmp_path / "bt" / "run"
    run.mkdir(parents=True)
    frame = (np.random.default_rng(0).poisson(30, (256, 256)) + 10).astype(np.uint16)
    write_marccd(str(run / "x.mccd"), frame, GEOMETRY)
    rows = [archive_rows(ROOT, image_size=256)[p][0] for p in (CEO2, GISAXS)]
    rows.append(archive_rows(tmp_path, image_size=256)["bt/run/x.mccd"][0])
    rows.append({**rows[0], "image_id": "generated", "provenance": json.dumps({"generator": "xray_spark"})})
    batch = pa.RecordBatch.from_pylist(rows)
    scorer = modeldir.load(SHIPPED_MODELS / "cnn-top17")
    found = score_batch(batch, scorer).to_pydict()
    network = scorer.score(*_stacked(rows))
    marccd, photonics = scorer.tags.index("MarCCD"), scorer.tags.index("Photonics CCD")
    assert network[0, photonics] > 0.1                      # the network's guess that the file replaces
    scores = np.stack(found["scores"])
    np.testing.assert_array_equal(scores[:, [marccd, photonics]][:3], [[0, 0], [0, 0], [1, 0]])
    np.testing.assert_allclose(scores[3], network[3], atol=1e-6)                     # generated: the network's
    others = [j for j in range(len(scorer.tags)) if j not in (marccd, photonics)]
    np.testing.assert_allclose(scores[:, others], network[:, others], atol=1e-6)
    assert "MarCCD" in found["tag_names"][2] and "Photonics CCD" not in found["tag_names"][0]
    # the embeddings (clusters, similar, the stream's labels) carry the same scores and tags
    embedded = embed_rows(batch.to_pydict(), PenultimateLayer(SHIPPED_MODELS / "cnn-top17"),
                          EmbeddingSettings.from_config(load_config(None, []))).to_pydict()
    np.testing.assert_allclose(np.stack(embedded["scores"]), scores, atol=1e-5)
    assert embedded["tag_names"] == found["tag_names"]


def _stacked(rows):
    from xray_spark import schema

    return (schema.decode_images([r["image"] for r in rows], 256, 256),
            schema.decode_masks([r["mask"] for r in rows], 256, 256))
