"""Configs: profiles, validation errors that name the field, stable hashes."""

from __future__ import annotations

import dataclasses

import pytest


from shearbridge.layout import Layout
from shearbridge.config import (
    PROFILE_ENV,
    ConfigError,
    SimConfig,
    TrainConfig,
    active_profile,
    config_hash,
    from_dict,
    get_profile,
    noise_tag,
)


def test_profiles_validate_and_grid_spans_required_levels():
    for name in ("quick", "paper", "full"):
        profile = get_profile(name)
        for sigma in (1e-5, 1e-4, 1e-3, 1e-2):
            assert sigma in profile.noise_grid


def test_profile_is_chosen_by_environment(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "quick")
    assert active_profile().name == "quick"
    monkeypatch.delenv(PROFILE_ENV)
    assert active_profile().name == "paper"


def test_unknown_profile_names_the_variable(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "qiuck")
    with pytest.raises(ConfigError, match="qiuck.*SHEARBRIDGE_PROFILE"):
        active_profile()


def test_profiles_keep_separate_data_folders(monkeypatch, data_root):
    assert Layout(get_profile("quick")).dir != Layout(get_profile("paper")).dir
    assert Layout(get_profile("quick")).dir.parent == data_root


@pytest.mark.parametrize(
    "data, field",
    [
        ({"learning_rate": "abc"}, "learning_rate"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"batch_size": 12.5}, "batch_size"),
        ({"n_outputs": 3}, "n_outputs"),
        ({"lerning_rate": 1e-3}, "lerning_rate"),
        ({"standardize_labels": "yes"}, "standardize_labels"),
    ],
)
def test_malformed_train_config_names_the_field(data, field):
    with pytest.raises(ConfigError, match=field):
        from_dict(TrainConfig, data)


@pytest.mark.parametrize(
    "data, field",
    [
        ({"galaxy": "spiral"}, "galaxy"),
        ({"flux_min": 6.0}, "flux_max"),
        ({"psf_sigma_arcsec": 0}, "psf_sigma_arcsec"),
    ],
)
def test_malformed_sim_config_names_the_field(data, field):
    with pytest.raises(ConfigError, match=field):
        from_dict(SimConfig, data)


def test_from_dict_round_trip_and_int_coercion():
    cfg = from_dict(TrainConfig, {"batch_size": 64.0, "learning_rate": 3e-4})
    assert cfg.batch_size == 64 and isinstance(cfg.batch_size, int)
    assert cfg == dataclasses.replace(TrainConfig(), batch_size=64, learning_rate=3e-4)


def test_config_hash_is_stable_and_sensitive():
    a, b = SimConfig(), SimConfig(galaxy="exp")
    assert config_hash(a) == config_hash(SimConfig())
    assert config_hash(a) != config_hash(b)


def test_noise_tag():
    assert noise_tag(1e-5) == "1e-05" and noise_tag(1e-2) == "1e-02"
    # exact: two noise levels never share a folder (1.4e-5 used to be filed as 1e-05)
    assert noise_tag(1.4e-5) == "1.4e-05" and noise_tag(2.5e-2) == "2.5e-02"
    for sigma in (1e-5, 1.4e-5, 3.3e-4, 0.1234567):
        assert float(noise_tag(sigma)) == sigma
    with pytest.raises(ConfigError, match="finite positive"):
        noise_tag(float("nan"))
