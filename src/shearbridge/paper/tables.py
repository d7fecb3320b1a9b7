"""LaTeX tables of the manuscript, built from summaries and models.

The number scripts write them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shearbridge.paper.outputs import fmt_int, fmt_noise, fmt_pm, fmt_sci

__all__ = [
    "bias_table",
    "bias_precision_table",
    "metacal_table",
    "mean_response",
    "fit_width",
    "compare_table",
    "population_table",
    "population_bias_table",
    "survey_table",
    "survey_cost_table",
    "pm_or_dash",
    "fmt_snr",
    "layer_table",
    "BASELINE_BLOCKS",
]

#: EnhancedGalaxyNN's layers and the JAX building block each one is (the translation table).
BASELINE_BLOCKS = {
    "conv1": "\\texttt{lax.conv\\_general\\_dilated} (SAME)",
    "relu1": "\\texttt{jax.nn.relu}",
    "pool1": "\\texttt{nn.avg\\_pool} (VALID, aliasing)",
    "conv2": "\\texttt{lax.conv\\_general\\_dilated} (SAME)",
    "relu2": "\\texttt{jax.nn.relu}",
    "pool2": "\\texttt{nn.avg\\_pool} (VALID, aliasing)",
    "flatten": "reshape",
    "dense1": "\\texttt{nn.Dense} (matrix product)",
    "relu3": "\\texttt{jax.nn.relu}",
    "out": "\\texttt{nn.Dense} (linear read-out)",
}


def bias_table(
    bias: Mapping[str, Mapping[str, Mapping[str, Any]]],
    tags: Sequence[str],
    label: Callable[[str], str],
    bias_psf: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> str:
    """m1, m2, c1, c2 (with errors) of every method at every noise tag, one row each, with the
    median matched-filter S/N of the shear-test galaxies and, where ``bias_psf`` is given, the
    PSF leakage ``alpha`` of the anisotropic-PSF test. A method not run at a level has no row
    there."""
    cols = "llcccccc" if bias_psf is not None else "llccccc"
    head = "method & $\\sigma_n$ & S/N$_{\\rm mf}$ & $m_1$ & $m_2$ & $c_1$ & $c_2$"
    head += " & $\\alpha$ \\\\" if bias_psf is not None else " \\\\"
    rows = [f"\\begin{{tabular}}{{{cols}}}", "\\toprule", head, "\\midrule"]
    for m, per in bias.items():
        for tag in (t for t in tags if t in per):
            r = per[tag]
            cells = [fmt_pm(r[k], r[f"{k}_err"], err_digits=2) for k in ("m1", "m2", "c1", "c2")]
            if bias_psf is not None:
                rp = bias_psf[m][tag]
                cells.append(fmt_pm(rp["alpha"], rp["alpha_err"], err_digits=2))
            snr = fmt_snr(r["median_snr_mf"]) if "median_snr_mf" in r else "--"
            rows.append(
                f"{label(m)} & {fmt_noise(r['noise_sigma'])} & {snr} & "
                + " & ".join(cells)
                + " \\\\"
            )
    rows += ["\\bottomrule", "\\end{tabular}"]
    return fit_width("\n".join(rows))


def bias_precision_table(
    bias: Mapping[str, Mapping[str, Mapping[str, Any]]],
    tags: Sequence[str],
    label: Callable[[str], str],
) -> str:
    """The shear test's achieved sigma(m) against its target per method (rows) and noise tag
    (columns), a dagger where the target is met; in brackets the galaxies that would reach it
    (:func:`shearbridge.summaries.compare.sigma_m_budget`); a dash where the method did not run."""
    first = next(per for per in bias.values() if all(t in per for t in tags))
    head = " & ".join(
        f"{fmt_noise(first[t]['noise_sigma'])} ({fmt_snr(first[t]['median_snr_mf'])})" for t in tags
    )
    rows = [
        f"\\begin{{tabular}}{{l{'c' * len(tags)}}}",
        "\\toprule",
        "method & " + head + " \\\\",
        "\\midrule",
    ]
    for m, per in bias.items():
        cells = []
        for t in tags:
            if t not in per:
                cells.append("--")
                continue
            p = per[t]["precision"]
            mark = "$^\\dagger$" if p["met"] else f" ({fmt_int(p['n_needed'])})"
            cells.append(fmt_sci(p["sigma_m"], 1) + mark)
        rows.append(f"{label(m)} & " + " & ".join(cells) + " \\\\")
    rows += ["\\bottomrule", "\\end{tabular}"]
    return fit_width("\n".join(rows))


def mean_response(result: Mapping[str, Any]) -> tuple[float, float]:
    """A metacal result's mean response over both components, ``(R1 + R2) / 2``, and its error."""
    return 0.5 * (result["R1"] + result["R2"]), 0.5 * math.hypot(result["R1_err"], result["R2_err"])


def metacal_table(
    bias: Mapping[str, Mapping[str, Mapping[str, Any]]],
    mcal: Mapping[str, Mapping[str, Mapping[str, Any]]],
    label: Callable[[str], str],
) -> str:
    """Raw against metacal-calibrated m per method (rows) and noise tag of ``mcal``: the raw shear
    test's m1, m2 (``bias``), the mean metacal response, the calibrated m1, m2 and the galaxies
    kept."""
    rows = [
        "\\begin{tabular}{llcccccc}",
        "\\toprule",
        "method & S/N$_{\\rm mf}$ & raw $m_1$ & raw $m_2$ & $\\langle R\\rangle$ "
        "& calibrated $m_1$ & calibrated $m_2$ & galaxies \\\\",
        "\\midrule",
    ]
    for m, per in mcal.items():
        for tag, r in per.items():
            raw = bias[m][tag]
            cells = [
                fmt_pm(raw["m1"], raw["m1_err"]),
                fmt_pm(raw["m2"], raw["m2_err"]),
                fmt_pm(*mean_response(r)),
                fmt_pm(r["m1"], r["m1_err"]),
                fmt_pm(r["m2"], r["m2_err"]),
                f"{fmt_int(r['n_galaxies'])}/{fmt_int(r['n_galaxies_measured'])}",
            ]
            rows.append(
                f"{label(m)} & {fmt_snr(raw['median_snr_mf'])} & " + " & ".join(cells) + " \\\\"
            )
    rows += ["\\bottomrule", "\\end{tabular}"]
    return fit_width("\n".join(rows))


def fit_width(tabular: str) -> str:
    """A tabular scaled to the width of its float, a column or the page (``\\resizebox`` to
    ``\\linewidth``; inside the generated file, so the manuscript's ``\\variable`` stays a plain
    input that showyourwork can preprocess)."""
    return "\\resizebox{\\linewidth}{!}{%\n" + tabular + "}"


def fmt_snr(x: float) -> str:
    """A signal-to-noise ratio to two significant figures, as a math-mode integer.

    For example ``$21{,}000$``."""
    return fmt_int(round(float(f"{x:.2g}")))


def compare_table(
    common: Mapping[str, Mapping[str, Any]],
    snr: Mapping[str, Mapping[str, float]],
    tags: Sequence[str],
    sigma: Mapping[str, float],
    methods: Sequence[str],
    label: Callable[[str], str],
    extra_err: Mapping[tuple[str, str], float] | None = None,
) -> str:
    """RMSE/CRLB on the common galaxies (RMS and robust, with errors) of every method, one row per
    method, one column pair per noise level headed by its matched-filter S/N (median of the
    comparison galaxies); a method's failure percentage follows its robust ratio in brackets where
    it flagged any galaxy. ``extra_err[(method, tag)]`` (the seed scatter of a network) is added in
    quadrature to the bootstrap error of the RMS ratio. Dashes where a method did not run at a
    level."""
    cols = "l" + "cc" * len(tags)
    head1 = " & ".join(
        f"\\multicolumn{{2}}{{c}}{{$\\sigma_n=${fmt_noise(sigma[t])} "
        f"(S/N$\\approx${fmt_snr(snr[t]['median'])})}}"
        for t in tags
    )
    head2 = " & ".join(["RMS & robust"] * len(tags))
    rows = [
        f"\\begin{{tabular}}{{{cols}}}",
        "\\toprule",
        f" & {head1} \\\\",
        f"method & {head2} \\\\",
        "\\midrule",
    ]
    for m in methods:
        cells = []
        for t in tags:
            r = common[t]["methods"].get(m)
            if r is None:
                cells += ["--", "--"]
                continue
            err = math.hypot(r["ratio_err"], (extra_err or {}).get((m, t), 0.0))
            robust = fmt_pm(r["robust_ratio"], r["robust_ratio_err"])
            if r["n_flagged"]:
                robust += f" [{100 * r['flagged_fraction']:.1f}\\%]"
            cells += [fmt_pm(r["ratio"], err), robust]
        rows.append(f"{label(m)} & " + " & ".join(cells) + " \\\\")
    rows += ["\\bottomrule", "\\end{tabular}"]
    return fit_width("\n".join(rows))


def _ratio_cell(r: Mapping[str, Any] | None, n_cell: int) -> str:
    """RMSE/CRLB with its error; the galaxies it rests on in brackets where the method flagged some;
    a dash where the method did not measure (or kept too few)."""
    if r is None or "ratio" not in r:
        return "--"
    cell = fmt_pm(r["ratio"], r["ratio_err"])
    return cell + (f" [{r['n']}]" if r.get("n", n_cell) < n_cell else "")


def population_table(
    cells: Sequence[Mapping[str, Any]],
    methods: Sequence[str],
    label: Callable[[str], str],
    family: Mapping[str, str],
    n_cell: int,
    network: str,
) -> str:
    """The population cell table: one row per galaxy family x PSF family x noise level (held-out
    families marked with a dagger), the median matched-filter S/N, RMSE/CRLB of every method of
    ``methods`` (the network's the mean over its seeds), the pull width of ``network`` (the
    summary's name of the network) and its gain over the moments-only estimator."""
    head = ["galaxy", "PSF", "$\\sigma_n$", "S/N"] + [label(m) for m in methods] + ["pull", "gain"]
    rows = [
        f"\\begin{{tabular}}{{lllr{'c' * (len(methods) + 2)}}}",
        "\\toprule",
        " & ".join(head) + " \\\\",
        "\\midrule",
    ]
    previous = None
    for c in cells:
        key = (c["galaxy"], c["psf"])
        if previous is not None and key != previous:
            rows.append("\\midrule")
        dagger = {
            "in": "",
            "galaxy": "$^\\dagger$",
            "psf": "$^\\ddagger$",
            "both": "$^{\\dagger\\ddagger}$",
        }
        name = (
            (f"{family[c['galaxy']]}{dagger[c['group']]}", family[c["psf"]])
            if key != previous
            else ("", "")
        )
        net = c["methods"][network]
        vals = [_ratio_cell(c["methods"].get(m), n_cell) for m in methods]
        rows.append(
            " & ".join(
                [
                    *name,
                    fmt_noise(c["noise_sigma"]),
                    fmt_snr(c["snr_median"]),
                    *vals,
                    fmt_pm(net["pull"], net["pull_err"]),
                    fmt_pm(c["gain"]["ratio"], c["gain"]["ratio_err"]),
                ]
            )
            + " \\\\"
        )
        previous = key
    rows += ["\\bottomrule", "\\end{tabular}"]
    return fit_width("\n".join(rows))


def population_bias_table(
    shear: Sequence[Mapping[str, Any]],
    methods: Sequence[str],
    label: Callable[[str], str],
    family: Mapping[str, str],
    noise: float,
    metacal: float | None,
    network: str,
) -> str:
    """The population shear tests: per cell, m (the mean of both components, jackknife error) of
    every method of ``methods`` at noise ``noise``, and the metacalibrated m of ``network`` (the
    summary's name of the network) with its median response at ``metacal``."""
    rows_at = {(r["galaxy"], r["psf"]): r for r in shear if math.isclose(r["noise_sigma"], noise)}
    mcal_at = {
        (r["galaxy"], r["psf"]): r
        for r in shear
        if metacal is not None and math.isclose(r["noise_sigma"], metacal)
    }
    extra = ["metacal $m$", "median $R$"] if mcal_at else []
    head = ["galaxy", "PSF"] + [label(m) for m in methods] + extra
    rows = [
        f"\\begin{{tabular}}{{ll{'c' * (len(methods) + len(extra))}}}",
        "\\toprule",
        " & ".join(head) + " \\\\",
        "\\midrule",
    ]
    for key, r in rows_at.items():
        vals = []
        for m in methods:
            b = r["bias"].get(m)
            vals.append("--" if b is None else fmt_pm(b["m"], b["m_err"]))
        if mcal_at:
            mc = mcal_at[key]["metacal"][network]
            vals += [fmt_pm(mc["m"], mc["m_err"]), f"${mc['median_response']:.2f}$"]
        rows.append(" & ".join([family[key[0]], family[key[1]], *vals]) + " \\\\")
    rows += ["\\bottomrule", "\\end{tabular}"]
    return fit_width("\n".join(rows))


def layer_table(shapes: Mapping[str, Sequence[int]], blocks: Mapping[str, str]) -> str:
    """One row per layer: name, building block, output shape (without the batch axis)."""
    rows = [
        "\\begin{tabular}{lll}",
        "\\toprule",
        "layer & building block & output shape \\\\",
        "\\midrule",
    ]
    for name, op in blocks.items():
        shape = "$" + "\\times".join(str(n) for n in shapes[name]) + "$"
        rows.append(f"\\texttt{{{name}}} & {op} & {shape} \\\\")
    rows += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(rows)


def pm_or_dash(r: Mapping[str, Any], key: str) -> str:
    """``r[key] +- r[key_err]`` (:func:`fmt_pm`), or a dash where too few galaxies left it
    undefined (None)."""
    v, e = r.get(key), r.get(f"{key}_err")
    return "--" if v is None or e is None else fmt_pm(v, e, err_digits=1)


def survey_table(methods: Mapping[str, Mapping[str, Any]], tags: Sequence[str]) -> str:
    """The survey-scale shear test: one row per method and level (median matched-filter S/N,
    galaxies, m1, m2, c1, c2, alpha1, alpha2 with jackknife errors), the method's source tier
    marked (``$^\\star$``: the committed survey tier; otherwise the build's in-hour tier)."""
    head = (
        "method & S/N$_{\\rm mf}$ & $N_{\\rm gal}$ & $m_1$ & $m_2$ & $c_1$ & $c_2$ & "
        "$\\alpha_1$ & $\\alpha_2$ \\\\"
    )
    rows = ["\\begin{tabular}{lcrcccccc}", "\\toprule", head, "\\midrule"]
    for m in methods.values():
        star = "$^\\star$" if m["source"] == "committed survey tier" else ""
        for tag in tags:
            r = m["levels"][tag]
            cells = [pm_or_dash(r, k) for k in ("m1", "m2", "c1", "c2", "alpha1", "alpha2")]
            rows.append(
                f"{m['label']}{star} & {fmt_snr(r['median_snr'])} & {fmt_int(r['n_galaxies'])} & "
                + " & ".join(cells)
                + " \\\\"
            )
    rows += ["\\bottomrule", "\\end{tabular}"]
    return fit_width("\n".join(rows))


def survey_cost_table(rows: Sequence[Mapping[str, Any]], cores: Sequence[int]) -> str:
    """What the survey test's targets cost per method: galaxies, stamps, core-hours and wall hours
    on each of ``cores`` (:func:`shearbridge.summaries.survey.cost_rows`), with the measured
    stamps per second on one core."""
    walls = " & ".join(f"wall, {c} cores (h)" for c in cores)
    head = f"method & stamps/s & galaxies & stamps & core-h & {walls} \\\\"
    rows_tex = [f"\\begin{{tabular}}{{l{'r' * (5 + len(cores))}}}", "\\toprule", head, "\\midrule"]
    for r in rows:
        known = r["galaxies"] is not None
        cells = [
            fmt_int(round(r["stamps_per_second"])),
            *(
                fmt_sci(r[k], 2) if known else "--"
                for k in ("galaxies", "stamps", "core_hours", *(f"wall_hours_{c}" for c in cores))
            ),
        ]
        rows_tex.append(f"{r['label']} & " + " & ".join(cells) + " \\\\")
    rows_tex += ["\\bottomrule", "\\end{tabular}"]
    return fit_width("\n".join(rows_tex))
