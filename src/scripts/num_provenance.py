"""Numbers: profile, hardware, software versions, commit, and compute wall times.

Reads the Snakemake benchmark files of the active profile
(``src/data/<profile>/benchmarks/*.tsv``) and writes the reproducibility
appendix's variables into ``src/tex/output/``.
Run on its own: ``python src/scripts/num_provenance.py``.
"""

from collections import defaultdict

from shearbridge import provenance
from shearbridge.layout import Layout
from shearbridge.config import Profile, active_profile
from shearbridge.paper.outputs import fmt_num, write_variable

STEP_NAMES = {
    "dataset": "simulate datasets (GalSim)",
    "train": "train networks",
    "evaluate": "evaluate networks",
    "estimate": "classical estimators",
    "crlb": "per-galaxy CRLB",
    "timing": "timing study",
    "diagnose": "information diagnosis",
    "population": "population study (test sets, training, cells)",
}


def tex_escape(text: str) -> str:
    for a, b in (("\\", "/"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&"), ("#", "\\#")):
        text = text.replace(a, b)
    return text


def outputs(profile: Profile) -> list[str]:
    """The variables :func:`main` writes (the same for every profile)."""
    return [
        "profile",
        "profile_description",
        "hardware",
        "n_cores",
        "software",
        "commit",
        "build_date",
        "runtime_table",
        "runtime_total_min",
    ]


def main() -> None:
    profile = active_profile()
    rec = provenance.record()
    hw, ver = rec["hardware"], rec["versions"]
    write_variable("profile", f"\\texttt{{{profile.name}}}")
    write_variable("profile_description", tex_escape(profile.description))
    gpu = ", ".join(hw["accelerators"]) or "no GPU"
    mem = f", {hw['memory_gib']:.0f}\\,GiB memory" if hw["memory_gib"] else ""
    write_variable("hardware", f"{tex_escape(hw['cpu'])} ({hw['cores']} cores{mem}; {gpu})")
    write_variable("n_cores", str(hw["cores"]))
    keys = (
        "python",
        "jax",
        "flax",
        "optax",
        "galsim",
        "numpy",
        "showyourwork",
        "snakemake",
        "ngmix",
    )
    write_variable("software", ", ".join(f"{k}~{tex_escape(ver[k])}" for k in keys))
    write_variable("commit", f"\\texttt{{{tex_escape(rec['commit'])}}}")
    write_variable("build_date", rec["date_utc"][:10])

    runtimes = provenance.rule_runtimes(Layout(profile).dir)
    grouped: dict[str, float] = defaultdict(float)
    for rule, seconds in runtimes.items():
        grouped[rule.split("-", 1)[0]] += seconds
    rows = [
        f"{STEP_NAMES.get(k, tex_escape(k))} & {fmt_num(v / 60, 2)} \\\\"
        for k, v in sorted(grouped.items())
    ]
    if not rows:
        rows = ["(no compute step has run yet) & -- \\\\"]
    total = sum(grouped.values()) / 60
    rows.append(f"\\midrule total & {fmt_num(total, 2) if grouped else '--'} \\\\")
    table = [
        "\\begin{tabular}{lr}",
        "\\toprule",
        "step & wall time [min] \\\\",
        "\\midrule",
        *rows,
        "\\bottomrule",
        "\\end{tabular}",
    ]
    write_variable("runtime_table", "\n".join(table))
    write_variable("runtime_total_min", fmt_num(total, 2) if grouped else "0")


if __name__ == "__main__":
    from shearbridge.paper.outputs import run_numbers

    run_numbers(main, outputs)
