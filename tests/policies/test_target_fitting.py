"""The target-aware models: a pool document that is target text is never a negative, and
cross-fitting gives each pool document the features of models fitted without it."""

import numpy as np
import pyarrow as pa
import pytest

from policies.config import AgentConfig, EnvConfig
from policies.env import make_env, resolve_tokenizer
from policies.features import FeatureExtractor, FeatureNorm, FeatureSpec
from policies.natural import Documents, TargetSplit
from policies.natural_corpus import NaturalData
from policies.pool import Pool
from policies.target import TARGET_COLUMNS
from policies.target_fitting import (
    cross_fitted_features,
    fit_target_models,
    fold_ids,
    target_members,
)
from policies.train_default import training_pool

MENU = "Home\nAbout us\nContact\nLogin\nShop\nCart\nPrivacy\nTerms\n" * 8


@pytest.fixture(scope="module")
def tokenizer() -> bytes:
    return resolve_tokenizer(None)


def pools(prose: list[str]) -> tuple[Pool, Pool]:
    """The same pool without and with 20 documents of its fit text appended (reader-kept
    crawl text, in the natural setup)."""
    menus = [MENU.replace("Shop", f"Shop {i}") for i in range(20)]
    fit, reward = prose[100:160], prose[160:200]
    base = prose[:60] + menus
    plain = Pool(pa.array(base, pa.string()), None, reward, fit)
    return plain, Pool(pa.array(base + prose[100:120], pa.string()), None, reward, fit)


def config(**kw) -> AgentConfig:
    return AgentConfig(target_dim=512, seed=0, env=EnvConfig(docs_per_step=8), **kw)


def test_serving_models_never_take_target_text_as_a_negative(prose, tokenizer):
    plain, with_kept = pools(prose)
    assert target_members(with_kept).sum() == 20 and not target_members(plain).any()
    a, _ = fit_target_models(config(), plain, tokenizer)
    b, _ = fit_target_models(config(), with_kept, tokenizer)
    assert np.array_equal(a.clf_weight, b.clf_weight) and a.clf_bias == b.clf_bias
    assert np.array_equal(a.dsir, b.dsir)


def test_cross_fitted_rows_are_out_of_fold(prose, tokenizer):
    _, pool = pools(prose)
    cfg = config(crossfit_folds=4, reference_model=True, reference_steps=3)
    spec = FeatureSpec(sketch_dim=64, target_dim=512, reference=True)
    raw = cross_fitted_features(cfg, pool, tokenizer, spec)
    target, reference = fit_target_models(cfg, pool, tokenizer)
    serving = FeatureExtractor(tokenizer, spec, target=target, reference=reference)(pool.texts)
    fitted_cols = [spec.names.index(c) for c in [*TARGET_COLUMNS, "reference_loss"]]
    other = np.setdiff1d(np.arange(spec.dim), fitted_cols)
    # every column no model is fitted for is the serving extractor's (to float rounding: the
    # language-ID score's block matrix product sums in an order set by the batch, ~1e-8)
    assert np.allclose(raw[:, other], serving[:, other], rtol=0, atol=1e-6)
    # fold 2's rows are exactly what models fitted without fold 2 give them
    held = fold_ids(len(pool), 4, 0) == 2
    t2, r2 = fit_target_models(cfg, pool, tokenizer, held_out=held)
    fold = FeatureExtractor(tokenizer, spec, target=t2, reference=r2)
    assert np.array_equal(raw[held], fold(pool.texts.filter(pa.array(held))))
    assert not np.allclose(raw[held][:, fitted_cols], serving[held][:, fitted_cols])
    # the target text in the pool: the serving classifier has fitted it as positive, so its
    # in-sample logit is higher than the one a model that never saw it gives
    members = target_members(pool)
    clf = spec.names.index("target_classifier")
    gap = serving[members, clf] - raw[members, clf]
    assert gap.mean() > 0.5 and (gap > 0).mean() > 0.8, gap


def test_target_text_in_the_pool_needs_cross_fitting(prose, tokenizer):
    _, pool = pools(prose)
    with pytest.raises(ValueError, match="crossfit_folds"):
        make_env(config(), pool, tokenizer)
    setup = make_env(config(crossfit_folds=4), pool, tokenizer)
    raw = cross_fitted_features(config(crossfit_folds=4), pool, tokenizer, FeatureSpec(
        sketch_dim=64, target_dim=512))
    assert np.allclose(setup.env.data.features, setup.norm(raw))


def test_training_pool_adds_only_the_kept_fit_documents(prose):
    kept = tuple(prose[100:110] + prose[160:165])  # 10 in the fit part, 5 in the reward part
    data = NaturalData(Documents(prose[:30], ["x"] * 30), Documents([], []),
                       TargetSplit(prose[100:160], prose[160:200], []), [], [], kept)
    assert training_pool(data).texts.to_pylist() == prose[:30]
    assert training_pool(data, kept_fit=True).texts.to_pylist() == prose[:30] + prose[100:110]


def test_es_agent_learns_from_cross_fitted_features_and_ships_the_serving_models(
        prose, tokenizer, tmp_path):
    """The agent job end to end with target text in its pool: ES from the classifier's ranking,
    judged by selections, cross-fitted; the saved policy scores with the models fitted on the
    whole pool and normalizes as the cross-fitted training features were."""
    from policies.algorithms import trainer_for
    from policies.checkpoint import load_policy
    from policies.config import ESConfig

    _, pool = pools(prose)
    cfg = AgentConfig(
        algorithm="es", init="column", output=str(tmp_path / "policy.safetensors"),
        target_dim=512, reference_model=True, reference_steps=3, crossfit_folds=3, seed=0,
        eval_interval=1, hidden=32,
        env=EnvConfig(learner="trainer", docs_per_step=8, target_keep=0.25, trainer_d_model=32,
                      trainer_n_layer=1, trainer_seq_len=64, device="cpu"),
        es=ESConfig(iterations=1, pairs=1, episode="selection"))
    trainer_for(cfg)(cfg, pool=pool, tokenizer=tokenizer)
    policy = load_policy(cfg.output)
    target, _ = fit_target_models(cfg, pool, tokenizer)
    assert np.array_equal(policy.target.clf_weight, target.clf_weight)
    spec = FeatureSpec(sketch_dim=cfg.sketch_dim, target_dim=512, reference=True)
    cross = FeatureNorm.fit(cross_fitted_features(cfg, pool, tokenizer, spec))
    assert np.allclose(policy.norm.mean, cross.mean, atol=1e-5)
    in_sample = FeatureNorm.fit(policy.feature_extractor()(pool.texts))
    assert not np.allclose(policy.norm.mean, in_sample.mean, atol=1e-3)
