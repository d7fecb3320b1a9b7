"""Numbers: the study's fixed settings, from the configs (never typed into ms.tex).

Writes the simulation settings of the active profile and the bias requirements.
Run on its own: ``python src/scripts/num_constants.py``.
"""

from shearbridge.config import (
    LSST_C_REQUIREMENT,
    LSST_M_REQUIREMENT,
    Profile,
    SimConfig,
    active_profile,
    get_profile,
    noise_tag,
)
from shearbridge.paper.outputs import fmt_int, fmt_noise, fmt_num, fmt_sci, write_variable
from shearbridge.paper.tables import BASELINE_BLOCKS, layer_table


def outputs(profile: Profile) -> list[str]:
    """The variables :func:`main` writes: the fixed settings, ``noise_<tag>`` per level of the
    profile."""
    names = [
        "req_lsst_m",
        "req_lsst_c",
        "stamp_size",
        "pixel_scale",
        "psf_sigma",
        "psf_fwhm_gauss",
        "g_sigma",
        "size_scale",
        "size_min",
        "flux_range",
        "offset_max",
        "noise_grid",
        "n_train",
        "n_val_pct",
        "n_test",
        "n_epochs",
        "full_epochs",
        "full_n_train",
    ]
    names += [
        f"arch_{k}"
        for k in (
            "kernel",
            "filters",
            "pool",
            "pool1_size",
            "pool2_size",
            "flatten",
            "dense",
            "n_params",
        )
    ]
    names += ["layer_table", "hp_lr", "hp_wd", "hp_batch"]
    return names + [f"noise_{noise_tag(s)}" for s in profile.noise_grid]


def main() -> None:
    sim, profile = SimConfig(), active_profile()
    write_variable("req_lsst_m", fmt_sci(LSST_M_REQUIREMENT, 1))
    write_variable("req_lsst_c", fmt_sci(LSST_C_REQUIREMENT, 1))
    write_variable("stamp_size", f"${sim.stamp_size_px}\\times{sim.stamp_size_px}$")
    write_variable("pixel_scale", f"${fmt_num(sim.pixel_scale_arcsec, 3)}''$")
    write_variable("psf_sigma", f"${fmt_num(sim.psf_sigma_arcsec, 2)}''$")
    write_variable("psf_fwhm_gauss", f"${fmt_num(sim.psf_sigma_arcsec * 2.3548200450309493, 2)}''$")
    write_variable("g_sigma", f"${fmt_num(sim.g_sigma, 2)}$")
    write_variable("size_scale", f"${fmt_num(sim.size_scale_arcsec, 2)}''$")
    write_variable("size_min", f"${fmt_num(sim.size_min_arcsec, 2)}''$")
    write_variable("flux_range", f"$[{sim.flux_min:g}, {sim.flux_max:g}]$")
    write_variable("offset_max", f"${fmt_num(sim.offset_max_arcsec, 2)}''$")
    write_variable("noise_grid", ", ".join(fmt_noise(s) for s in profile.noise_grid))
    write_variable("n_train", fmt_int(profile.n_train))
    write_variable("n_val_pct", f"${100 * profile.val_fraction:.0f}\\%$")
    write_variable("n_test", fmt_int(profile.n_test))
    write_variable("n_epochs", f"${profile.epochs}$")
    for sigma in profile.noise_grid:
        write_variable(f"noise_{noise_tag(sigma)}", fmt_noise(sigma))
    full = get_profile("full")
    write_variable("full_epochs", f"${full.epochs}$")
    write_variable("full_n_train", fmt_int(full.n_train))
    write_baseline_architecture(profile)


def write_baseline_architecture(profile) -> None:
    """Layer sizes and hyper-parameters read off the actual model and experiment config."""
    from shearbridge.config.experiments import get_experiment
    from shearbridge.models import count_params, feature_shapes, get_model

    exp = get_experiment("baseline", profile, profile.noise_grid[0])
    params, shape = feature_shapes(
        get_model(exp.train.model, exp.train.n_outputs), SimConfig().stamp_size_px
    )
    k1 = params["conv1"]["kernel"].shape
    write_variable("arch_kernel", f"${k1[0]}\\times{k1[1]}$")
    write_variable(
        "arch_filters",
        f"{params['conv1']['kernel'].shape[-1]} and {params['conv2']['kernel'].shape[-1]}",
    )
    pool = shape["relu1"][0] // shape["pool1"][0]
    write_variable("arch_pool", f"${pool}\\times{pool}$")
    write_variable("arch_pool1_size", f"${shape['pool1'][0]}\\times{shape['pool1'][1]}$")
    write_variable("arch_pool2_size", f"${shape['pool2'][0]}\\times{shape['pool2'][1]}$")
    write_variable("arch_flatten", fmt_int(shape["flatten"][-1]))
    write_variable("arch_dense", f"${params['dense1']['kernel'].shape[-1]}$")
    write_variable("arch_n_params", fmt_int(count_params(params)))
    write_variable("layer_table", layer_table(shape, BASELINE_BLOCKS))
    write_variable("hp_lr", fmt_noise(exp.train.learning_rate))
    write_variable("hp_wd", fmt_noise(exp.train.weight_decay))
    write_variable("hp_batch", f"${exp.train.batch_size}$")


if __name__ == "__main__":
    from shearbridge.paper.outputs import run_numbers

    run_numbers(main, outputs)
