import numpy as np
import pytest

from xray_spark import tags


def test_vocabulary_is_the_papers_98_tags_in_rank_order():
    vocab = tags.vocabulary()
    assert len(vocab) == 98
    assert [t.rank for t in vocab] == list(range(1, 99))
    assert vocab[0].name == "Thin film" and vocab[0].count_real == 1646
    assert {t.group for t in vocab} == set(tags.GROUPS)
    assert len(set(tags.names())) == 98


def test_subsets():
    top17 = tags.subset("top17")
    assert len(top17) == 17 and top17[0] == "Thin film" and top17[-1] == "Higher orders: 2 to 3"
    assert tags.subset("all") == tags.names()
    assert set(tags.subset("G1")) >= {"GISAXS", "GIWAXS", "TSAXS", "TWAXS"}
    assert sum(len(tags.subset(g)) for g in tags.GROUPS) == 98
    with pytest.raises(tags.UnknownTagError, match="allowed are 'all', 'topN'"):
        tags.subset("top200")


def test_encode_decode_round_trip_over_full_vocabulary_and_subset():
    rng = np.random.default_rng(0)
    for _ in range(20):
        chosen = list(rng.choice(tags.names(), size=rng.integers(0, 10), replace=False))
        vec = tags.encode(chosen)
        assert vec.dtype == np.int8 and vec.shape == (98,) and vec.sum() == len(chosen)
        assert set(tags.decode(vec)) == set(chosen)
        top = tags.subset("top17")
        sub = tags.encode(chosen, top)
        assert set(tags.decode(sub, top)) == set(chosen) & set(top)
        np.testing.assert_array_equal(tags.project(vec, top), sub)


def test_unknown_tag_names_fail_with_closest_names():
    with pytest.raises(tags.UnknownTagError) as err:
        tags.encode(["Thin flim", "Ring: isotropic"])
    message = str(err.value)
    assert "'Thin flim' (closest: 'Thin film'" in message
    assert "'Ring: isotropic' (closest: 'Ring: Isotropic'" in message
    with pytest.raises(ValueError, match="expected \\(98,\\)"):
        tags.decode(np.zeros(5))
