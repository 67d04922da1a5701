import numpy as np
import pyarrow as pa
import pytest

from policies.checkpoint import DEFAULT_POLICY, load_policy
from policies.features import (
    FeatureExtractor,
    FeatureNorm,
    FeatureSpec,
    compression_ratio,
    hashed_sketch,
    lexical_diversity,
)
from policies.pool import char_soup, repeated_lines

PROSE = ("The river ran past the old mill, and the miller's children watched the boats go by. "
         "In the evening they walked to the village to buy bread and to hear the news of the "
         "day from their neighbours, who had much to say about the weather and the harvest.")


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    return FeatureExtractor(load_policy(DEFAULT_POLICY).tokenizer, FeatureSpec(sketch_dim=32))


def test_shape_and_names(extractor):
    texts = pa.array([PROSE, "", None, "word"], pa.string())
    x = extractor(texts)
    assert x.shape == (4, extractor.spec.dim)
    assert x.dtype == np.float32
    assert len(extractor.spec.names) == extractor.spec.dim
    assert extractor.spec.names[-32:] == [f"sketch_{i}" for i in range(32)]


def test_empty_batch(extractor):
    assert extractor(pa.array([], pa.string())).shape == (0, extractor.spec.dim)


def test_signals_come_from_rule_steps(extractor):
    rng = np.random.default_rng(0)
    rep = repeated_lines(PROSE.replace(", ", "\n"), rng)
    x = extractor(pa.array([PROSE, rep], pa.string()))
    dup_line = extractor.spec.names.index("gopher_dup_line_frac")
    assert x[0, dup_line] == 0.0
    assert x[1, dup_line] > 0.5


def test_text_statistics_separate_junk():
    rng = np.random.default_rng(0)
    soup = char_soup(PROSE, rng)
    rep = "\n".join([PROSE[:60]] * 20)
    texts = pa.array([PROSE, soup, rep], pa.string())
    cr = compression_ratio(texts)
    assert cr[1] > cr[0] > cr[2]
    div = lexical_diversity(texts)
    assert div[2] < div[0]
    assert np.isnan(lexical_diversity(pa.array(["   "]))[0])


def test_sketch_is_unit_norm_and_order_sensitive():
    s = hashed_sketch(pa.array(["a b c d", "d c b a", ""], pa.string()), 64)
    assert np.allclose(np.linalg.norm(s[:2], axis=1), 1.0, atol=1e-5)
    assert not np.allclose(s[0], s[1])  # bigrams differ
    assert np.all(s[2] == 0)


def test_feature_norm_handles_nan():
    x = np.array([[1.0, np.nan], [3.0, 2.0], [5.0, 4.0]], np.float32)
    norm = FeatureNorm.fit(x)
    z = norm(x)
    assert np.isfinite(z).all()
    assert z[0, 1] == 0.0
    assert np.isclose(z[:, 0].mean(), 0.0, atol=1e-6)


def test_model_features_required(extractor):
    ex = FeatureExtractor(extractor.tokenizer_proto, FeatureSpec(sketch_dim=8, model_features=True))
    with pytest.raises(ValueError, match="model_losses"):
        ex(pa.array([PROSE]))
    x = ex(pa.array([PROSE, PROSE]), model_losses=np.array([[3.0, 2.5], [4.0, 4.5]]))
    assert np.allclose(x[:, -1], [0.5, -0.5])
