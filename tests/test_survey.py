"""The survey-scale shear test: its sums and their merge, a chunk's determinism, the store rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shearbridge.config import ConfigError, get_profile
from shearbridge.config.survey import SURVEY_TIERS, SurveyConfig, get_tier
from shearbridge.sim.stamps import SHEAR_TEST_STAMPS
from shearbridge.stats.survey import FIELDS, combine_blocks, group_sums, merge


def _design(n_gal: int, g: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Labels of ``n_gal`` galaxies in the shear test's 16-slot order, with PSF ellipticities."""
    slot = np.tile(np.arange(SHEAR_TEST_STAMPS), n_gal)
    pair = np.repeat(np.arange(n_gal), SHEAR_TEST_STAMPS)
    sign = np.where((slot // 2) % 2 == 0, 1, -1)
    along1 = pair % 2 == 0
    psf = rng.uniform(-0.05, 0.05, size=(n_gal, 2))
    return {
        "pair_id": pair,
        "orient": slot // 4,
        "sign": sign,
        "noise_sign": np.where(slot % 2 == 0, 1, -1),
        "applied_g1": np.where(along1, sign * g, 0.0),
        "applied_g2": np.where(along1, 0.0, sign * g),
        "psf_g1": np.repeat(psf[:, 0], SHEAR_TEST_STAMPS),
        "psf_g2": np.repeat(psf[:, 1], SHEAR_TEST_STAMPS),
    }


def _estimates(labels, m, c, alpha, response, noise, rng):
    """e = R [(1 + m) g + c + alpha P] + noise, per stamp (R the responsivity)."""
    g = np.stack([labels["applied_g1"], labels["applied_g2"]], axis=1)
    p = np.stack([labels["psf_g1"], labels["psf_g2"]], axis=1)
    e = response * ((1.0 + np.asarray(m)) * g + np.asarray(c) + alpha * p)
    return e + noise * rng.standard_normal(e.shape)


def test_merge_recovers_injected_m_c_alpha_exactly_without_noise():
    rng = np.random.default_rng(1)
    labels = _design(64, 0.02, rng)
    m, c, alpha, resp = (3e-3, -2e-3), (1e-4, -2e-4), 0.05, 0.6
    e = _estimates(labels, m, c, alpha, resp, 0.0, rng)
    r = np.full_like(e, resp)
    sums = [
        group_sums(
            e[i : i + 256],
            r[i : i + 256],
            None,
            {k: v[i : i + 256] for k, v in labels.items()},
            0.02,
        )
        for i in range(0, len(e), 256)
    ]
    out = merge(np.array(sums), 0.02)
    for k in (1, 2):
        assert out[f"m{k}"] == pytest.approx(m[k - 1], abs=1e-12)
        assert out[f"c{k}"] == pytest.approx(c[k - 1], abs=1e-12)
        assert out[f"alpha{k}"] == pytest.approx(alpha, abs=1e-10)
        assert out[f"R{k}"] == pytest.approx(resp)
        assert out[f"m{k}_raw"] == pytest.approx((1 + m[k - 1]) * resp - 1, abs=1e-12)
    assert out["n_galaxies"] == 64 and out["n_dropped"] == 0


def test_merge_errors_are_calibrated():
    """Over independent noisy realisations the jackknife error matches the scatter of m and c."""
    m_hat, m_err, c_hat, c_err = [], [], [], []
    for rep in range(60):
        rng = np.random.default_rng(100 + rep)
        labels = _design(160, 0.02, rng)
        e = _estimates(labels, (0.0, 0.0), (0.0, 0.0), 0.0, 1.0, 0.05, rng)
        sums = [
            group_sums(
                e[i : i + 160], None, None, {k: v[i : i + 160] for k, v in labels.items()}, 0.02
            )
            for i in range(0, len(e), 160)
        ]
        out = merge(np.array(sums), 0.02)
        m_hat.append(out["m1"])
        m_err.append(out["m1_err"])
        c_hat.append(out["c1"])
        c_err.append(out["c1_err"])
    for hat, err in ((m_hat, m_err), (c_hat, c_err)):
        ratio = np.std(hat) / np.sqrt(np.mean(np.square(err)))
        assert 0.7 < ratio < 1.35, ratio
        assert abs(np.mean(hat)) < 4 * np.std(hat) / np.sqrt(len(hat))


def test_group_sums_drop_a_flagged_galaxy_whole_and_check_the_order():
    rng = np.random.default_rng(2)
    labels = _design(4, 0.02, rng)
    e = _estimates(labels, (0, 0), (0, 0), 0.0, 1.0, 0.0, rng)
    flags = np.zeros(len(e), np.int64)
    flags[SHEAR_TEST_STAMPS + 3] = 1  # one stamp of galaxy 1
    s = group_sums(e, None, flags, labels, 0.02)
    assert s[FIELDS.index("dropped")] == 1 and s[FIELDS.index("n")] == 3
    with pytest.raises(ValueError, match="order"):
        group_sums(e[::-1], None, None, {k: v[::-1] for k, v in labels.items()}, 0.02)
    with pytest.raises(ValueError, match="16 n"):
        group_sums(e[:5], None, None, labels, 0.02)


def test_blocks_combine_by_addition():
    sums = np.random.default_rng(3).random((450, len(FIELDS)))
    blocks = combine_blocks(sums, 200)
    assert blocks.shape == (200, len(FIELDS))
    assert np.allclose(blocks.sum(axis=0), sums.sum(axis=0))
    with pytest.raises(ValueError, match="two groups"):
        merge(sums[:1], 0.02)


def test_tiers_validate_and_name_the_problem():
    for tier in SURVEY_TIERS.values():
        tier.validate()
    assert get_tier("survey").n_galaxies >= 100 * get_tier("paper").chunk_galaxies
    with pytest.raises(ConfigError, match="multiple"):
        SurveyConfig("t", n_chunks=1, chunk_galaxies=10, group_galaxies=4).validate()
    with pytest.raises(ConfigError, match="even"):
        SurveyConfig("t", n_chunks=1, chunk_galaxies=9, group_galaxies=3).validate()
    with pytest.raises(ConfigError, match="unknown survey tier"):
        get_tier("nope")


@pytest.fixture(scope="module")
def anacal_only():
    pytest.importorskip("anacal")
    from shearbridge.runs import method_estimator

    tier = get_tier("quick").replace(name="tiny", chunk_galaxies=4, group_galaxies=2)
    ests = {("anacal", s): method_estimator("anacal", get_profile("quick"), s) for s in tier.levels}
    return tier, ests


def test_a_group_gives_the_same_bytes_whichever_job_computes_it(anacal_only):
    from shearbridge.steps.survey import run_groups

    tier, ests = anacal_only
    scale = tier.population.sim.pixel_scale_arcsec
    both, hist, _ = run_groups(tier, 7, 0, [0, 1], ests, scale)
    alone, _, _ = run_groups(tier, 7, 0, [1], ests, scale)
    again, _, _ = run_groups(tier, 7, 0, [0, 1], ests, scale)
    assert json.dumps(both) == json.dumps(again)
    for tag in both["anacal"]:
        assert both["anacal"][tag][1] == alone["anacal"][tag][0]  # order and company do not matter
        assert both["anacal"][tag][0] != both["anacal"][tag][1]  # groups are independent draws
    other, _, _ = run_groups(tier, 8, 0, [0], ests, scale)
    assert other["anacal"] != alone["anacal"]


def test_merge_reads_the_store_only_where_the_hash_matches(tmp_path, monkeypatch, anacal_only):
    """A committed tier whose hash matches is used; one hash off and the in-hour tier is."""
    import shearbridge.steps.survey as sv
    from shearbridge.layout import Layout

    monkeypatch.setenv("SHEARBRIDGE_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(sv, "survey_methods", lambda: [("anacal", "anacal", "survey")])
    small = {
        "quick": get_tier("quick").replace(chunk_galaxies=4, group_galaxies=2),
        "survey": get_tier("survey").replace(
            n_chunks=2, chunk_galaxies=4, group_galaxies=2, method_chunks=()
        ),
    }
    monkeypatch.setattr(sv, "get_tier", lambda name: small[name])
    monkeypatch.setattr(sv, "tier_for_profile", lambda name: small["quick"])
    profile = get_profile("quick")
    store = tmp_path / "static"
    for c in range(2):
        sv.run_chunk("quick", c, profile)
        sv.run_chunk("survey", c, profile, store=store)
    out = sv.merge_survey(profile, store_root=store)["methods"]["anacal"]
    assert out["source"] == "committed survey tier" and out["tier"] == "survey"
    path = Layout.survey_store("survey", "anacal", 1, store)
    chunk = json.loads(path.read_text())
    chunk["methods"]["anacal"]["hash"] = "0" * 16
    path.write_text(json.dumps(chunk))
    out = sv.merge_survey(profile, store_root=store)["methods"]["anacal"]
    assert out["source"] == "in-hour tier" and out["tier"] == "quick"
    assert set(out["levels"]) == {"2e-02", "1e-02", "1e-03"}
    assert np.isfinite(out["levels"]["1e-03"]["m1_err"])


def test_median_snr_reads_the_histograms():
    from shearbridge.steps.survey_measure import MF_NORM_EDGES, median_snr

    norms = np.random.default_rng(4).lognormal(np.log(0.2), 0.5, 20000)
    hists = [np.histogram(part, MF_NORM_EDGES)[0] for part in np.split(norms, 4)]
    assert median_snr(hists, 1e-2) == pytest.approx(np.median(norms) / 1e-2, rel=0.01)


def _committed_matching():
    """(key, chunk path) of committed survey-tier chunks whose hash is that of this code, for the
    methods that need no trained network (their hash does not depend on the machine's training)."""
    from shearbridge.layout import Layout
    from shearbridge.runs import method_estimator
    from shearbridge.steps.survey import method_hash

    tier = get_tier("survey")
    profile = get_profile("paper")
    found = []
    for key in ("anacal", "anacal_true"):
        path = Layout.survey_store(tier.name, key, 0)
        if not path.exists():
            continue
        chunk = json.loads(path.read_text())
        est = method_estimator(key, profile, tier.levels[0])
        if chunk["methods"][key]["hash"] == method_hash(tier, key, est, chunk["seed"]):
            found.append((key, path))
    return found


@pytest.mark.pipeline
def test_a_committed_chunk_is_reproduced_exactly():
    """The first group of a committed survey-tier chunk, recomputed here, gives the same sums to
    the last bit (on another CPU model: to 1e-12, what floating-point reassociation can change)."""
    pytest.importorskip("anacal")
    from shearbridge.provenance import cpu_model
    from shearbridge.runs import method_estimator
    from shearbridge.steps.survey import run_groups

    found = _committed_matching()
    if not found:
        pytest.skip("no committed survey chunk matches this code's hash (make survey writes them)")
    tier = get_tier("survey")
    for key, path in found:
        chunk = json.loads(path.read_text())
        ests = {(key, s): method_estimator(key, get_profile("paper"), s) for s in tier.levels}
        scale = tier.population.sim.pixel_scale_arcsec
        sums, _, _ = run_groups(tier, chunk["seed"], 0, [0], ests, scale)
        for tag, groups in chunk["methods"][key]["sums"].items():
            if chunk["provenance"]["hardware"]["cpu"] == cpu_model():
                assert sums[key][tag][0] == groups[0], (key, tag)
            else:
                assert np.allclose(sums[key][tag][0], groups[0], rtol=1e-12, atol=0), (key, tag)
