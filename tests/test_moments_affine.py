"""The formula without the network (issue 15, item 1), and every method scored on the same galaxies.

* ``MomentsAffine`` is ShapeNet's analytic part: its zero-epoch "training" is the least-squares
  fit of ShapeNet's ``data_init``, and its prediction is ShapeNet's when the correction is zero;
* the scoring statistics of the comparison (robust ratio, paired RMSE ratio, matched-filter S/N);
* the common-set summary: a galaxy one method flags is dropped for every method.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from shearbridge.config import ConfigError, get_profile
from shearbridge.models import MODEL_FILE, get_model, init_params, load_trained
from shearbridge.models.moments_affine import affine_lstsq
from shearbridge.stats.crlb import matched_filter_snr
from shearbridge.stats.resample import GAUSS_MEDIAN_ABS, paired_rmse_ratio, robust_ratio_with_error
from shearbridge.train.loop import train_and_evaluate
from shearbridge.train.metrics import LOSSES
from test_train import experiment, gaussian_stamps


def test_affine_lstsq_recovers_a_known_affine_map():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(400, 2, 2))
    scale, offset = np.array([[0.7, -0.2], [0.4, 1.3]]), np.array([0.05, -0.1])
    targets = np.einsum("nkc,kc->nc", g, scale) + offset
    s, o = affine_lstsq(g, targets)
    np.testing.assert_allclose(s, scale, atol=1e-12)
    np.testing.assert_allclose(o, offset, atol=1e-12)


@pytest.mark.pipeline
def test_zero_epochs_publish_the_least_squares_fit_and_match_shapenet(tmp_path):
    data = gaussian_stamps(96, 33, seed=1)
    test = gaussian_stamps(32, 33, seed=2)
    exp = experiment("fit", model="moments_affine", n_outputs=2, epochs=0)
    metrics = train_and_evaluate(
        exp, tmp_path / "run", train_data=data, test_data=test, progress=False
    )
    losses = json.loads((tmp_path / "run" / LOSSES).read_text())
    assert [e["epoch"] for e in losses["epochs"]] == [0] and losses["best_epoch"] == 0
    trained = load_trained(tmp_path / "run" / MODEL_FILE)
    # noise-free Gaussians: the formula is exact up to pixelisation, so the fit is near perfect
    assert metrics["test"]["g1"]["rmse"] < 0.02 and metrics["test"]["g2"]["rmse"] < 0.02
    # ShapeNet with its correction zeroed predicts the same shears from the same least-squares fit
    psf_px = data.sim.psf_sigma_px
    net = get_model("shapenet", 2, psf_sigma_px=psf_px)
    params = init_params(net, jax.random.PRNGKey(0), 33)
    params = net.data_init(
        params,
        data.images(1e-5)[trained_split(exp, len(data))],
        standardised(trained, data)[trained_split(exp, len(data))],
    )
    np.testing.assert_allclose(
        np.asarray(params["g_scale"]), np.asarray(trained.params["g_scale"]), rtol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(params["g_offset"]), np.asarray(trained.params["g_offset"]), atol=1e-6
    )


def trained_split(exp, n):
    from shearbridge.train.data import split_indices

    return split_indices(n, exp.profile.val_fraction, exp.train.seed)[0]


def standardised(trained, data):
    return (data.targets(2) - trained.label_mean[:2]) / trained.label_std[:2]


@pytest.mark.pipeline
def test_zero_epochs_need_a_model_with_a_fit(tmp_path):
    data = gaussian_stamps(32, 33, seed=1)
    with pytest.raises(ConfigError, match="data_init"):
        train_and_evaluate(
            experiment("nofit", model="enhanced", epochs=0),
            tmp_path / "run",
            train_data=data,
            test_data=data,
            progress=False,
        )
    assert not (tmp_path / "run").exists(), "a refused run leaves no folder behind"


def test_robust_ratio_is_one_at_the_bound_and_ignores_outliers():
    rng = np.random.default_rng(3)
    crlb = rng.uniform(0.5, 2.0, (4000, 2))
    err = rng.normal(size=(4000, 2)) * crlb
    r = robust_ratio_with_error(err, crlb, np.random.default_rng(0), 200)
    assert abs(r["robust_ratio"] - 1) < 3 * r["robust_ratio_err"] and r["robust_ratio_err"] < 0.03
    err[:40] *= 1e3  # 1 per cent wild galaxies: the RMS explodes, the robust ratio barely moves
    r2 = robust_ratio_with_error(err, crlb, np.random.default_rng(0), 200)
    assert abs(r2["robust_ratio"] - r["robust_ratio"]) < 0.03
    assert np.isclose(
        np.median(np.abs(np.random.default_rng(1).normal(size=200_000))),
        GAUSS_MEDIAN_ABS,
        atol=0.01,
    )


def test_paired_ratio_cancels_shared_scatter():
    rng = np.random.default_rng(4)
    shared = rng.normal(size=(500, 2))
    a, b = 1.10 * shared, shared + 1e-3 * rng.normal(size=(500, 2))
    r = paired_rmse_ratio(a, b, np.random.default_rng(0), 200)
    assert abs(r["ratio"] - 1.10) < 0.01 and r["ratio_err"] < 0.005
    with pytest.raises(ValueError, match="equal shapes"):
        paired_rmse_ratio(a, b[:10], np.random.default_rng(0), 10)


def test_matched_filter_snr_is_the_norm_over_sigma():
    stamps = np.zeros((2, 5, 5))
    stamps[0, 2, 2] = 3.0
    stamps[1, 1:3, 1:3] = 1.0
    np.testing.assert_allclose(matched_filter_snr(stamps, 0.5), [6.0, 4.0])
    with pytest.raises(ValueError):
        matched_filter_snr(stamps[0], 0.5)


def test_common_set_drops_a_galaxy_any_method_flags(data_root):
    from shearbridge.io import save_npz
    from shearbridge.layout import Layout
    from shearbridge.summaries.compare import common_set_scores

    profile = get_profile("quick")
    n, sigma = 40, 1e-3
    rng = np.random.default_rng(5)
    unit = rng.uniform(1.0, 2.0, n)
    save_npz(Layout(profile).bound(), sigma_g1=unit, sigma_g2=unit, wall_s=np.asarray(1.0))
    true = rng.normal(0, 0.2, (n, 2))
    flags = np.zeros(n, np.int64)
    flags[:4] = 1  # "not converged"
    results = {
        "good": (true + sigma * unit[:, None] * rng.normal(size=(n, 2)), np.zeros(n, np.int64)),
        "flaky": (true + sigma * unit[:, None] * rng.normal(size=(n, 2)), flags),
    }
    results["flaky"][0][:4] += 1.0  # its flagged estimates are garbage
    for m, (g, f) in results.items():
        save_npz(
            Layout(profile).result("compare", m, sigma, suffix=".npz"), g=g, flags=f, true=true
        )
    out = common_set_scores(profile, ["good", "flaky"], sigma)
    assert out["n_common"] == n - 4 and out["n_total"] == n
    assert out["methods"]["good"]["n"] == out["methods"]["flaky"]["n"] == n - 4
    assert out["methods"]["flaky"]["flagged_fraction"] == pytest.approx(0.1)
    assert out["methods"]["flaky"]["flags"] == {"not_converged": 4}
    assert out["methods"]["good"]["n_flagged"] == 0
    assert out["methods"]["flaky"]["ratio_all_finite"] > 50 * out["methods"]["flaky"]["ratio"]
    # a method's bootstrap is its own: listed first, alone or beside others, its errors are the same
    for order in (["flaky"], ["flaky", "good"]):
        again = common_set_scores(profile, order, sigma)["methods"]["flaky"]
        assert again["ratio_err"] == out["methods"]["flaky"]["ratio_err"]
