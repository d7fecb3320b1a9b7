"""Numbers: retained shear information per layer, probe RMSEs, saliency and sub-pixel results.

Reads ``src/data/summary/diagnosis.json``. Run on its own: ``python src/scripts/num_diagnosis.py``.
"""

import numpy as np

from shearbridge.config import Profile, noise_tag
from shearbridge.paper.outputs import fmt_num, write_variable
from shearbridge.summaries import load_summary_json


def pct(x: float) -> str:
    if x > 0.9999:
        return "$>99.99\\%$"
    return f"${fmt_num(100 * x, 3)}\\%$" if x > 1e-3 else f"${100 * x:.1g}\\%$"


def outputs(profile: Profile) -> list[str]:
    """The variables :func:`main` writes: information, probes and saliency at every level of the
    profile, the sizes and the sub-pixel results."""
    tags = [noise_tag(s) for s in profile.noise_grid]
    layers = ("pool1", "pool2", "relu3", "out", "dense1", "convpool_min")
    names = [
        f"info_{mode}_{layer}_{t}" for mode in ("fixed", "prior") for layer in layers for t in tags
    ]
    names += [
        f"{name}_{t}"
        for name in (
            "probe_best",
            "probe_best_layer",
            "probe_network",
            "saliency_corr",
            "saliency_eff",
        )
        for t in tags
    ]
    return names + [
        "info_n_galaxies",
        "info_window",
        "probe_n_train",
        "subpixel_ratio_small",
        "subpixel_size_small",
        "subpixel_avg_small",
        "subpixel_blur_small",
    ]


def main() -> None:
    d = load_summary_json("diagnosis")
    layers = d["layers"]
    conv_pool = d["subpixel"]["layers"]  # EnhancedGalaxyNN's conv/pool stack
    sizes = d["sizes"]
    write_variable("info_n_galaxies", f"${sizes['n_fisher']}$")
    write_variable("info_window", f"${sizes['window_px']}\\times{sizes['window_px']}$")
    write_variable("probe_n_train", f"${sizes['n_probe_train']}$")
    for tag in d["noise_tags"]:
        info = d["information"][tag]["noisy"]
        for mode in ("fixed", "prior"):
            mean = dict(zip(layers, info[mode]["mean"]))
            for layer in ("pool1", "pool2", "relu3", "out", "dense1"):
                write_variable(f"info_{mode}_{layer}_{tag}", pct(mean[layer]))
            write_variable(f"info_{mode}_convpool_min_{tag}", pct(min(mean[k] for k in conv_pool)))
        lin = d["probes"][tag]["linear"]
        best = min(lin, key=lambda k: np.mean(lin[k]))
        write_variable(f"probe_best_{tag}", f"${fmt_num(float(np.mean(lin[best])), 2)}$")
        write_variable(f"probe_best_layer_{tag}", f"\\texttt{{{best}}}")
        net = d["probes"][tag]["network"]
        write_variable(f"probe_network_{tag}", f"${fmt_num(float(np.mean(net)), 2)}$")
        v = d["vision"][tag]
        write_variable(
            f"saliency_corr_{tag}", f"${v['corr_ml']['mean']:.2f}\\pm{v['corr_ml']['std']:.2f}$"
        )
        write_variable(f"saliency_eff_{tag}", f"${v['efficiency']['mean']:.2f}$")
    sub = d["subpixel"]
    last = -1  # the deepest layer of the pooling stack
    small = int(np.argmin(sub["sizes_arcsec"]))
    ratio = sub["random_avg"]["g_equiv"][small][last] / sub["random_blur"]["g_equiv"][small][last]
    write_variable("subpixel_ratio_small", f"${fmt_num(ratio, 2)}$")
    write_variable("subpixel_size_small", f"${sub['sizes_arcsec'][small]:.2f}''$")
    write_variable(
        "subpixel_avg_small", f"${fmt_num(sub['random_avg']['g_equiv'][small][last], 2)}$"
    )
    write_variable(
        "subpixel_blur_small", f"${fmt_num(sub['random_blur']['g_equiv'][small][last], 2)}$"
    )


if __name__ == "__main__":
    from shearbridge.paper.outputs import run_numbers

    run_numbers(main, outputs)
