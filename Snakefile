# Rules for everything the manuscript needs beyond figure scripts (showyourwork
# includes this file). Data flows one way:
#   config -> simulate -> train / fit -> measure -> src/data/<profile>/ -> summaries -> figures, numbers
# The profile comes from $SHEARBRIDGE_PROFILE (the Makefile sets it from PROFILE=...).
# Expensive outputs live under src/data/<profile>/ so switching profile keeps the other's work.
# Every compute rule records its wall time with `benchmark:` (read by num_provenance.py).
import os
import subprocess

PROFILE = os.environ.get("SHEARBRIDGE_PROFILE", "paper") or "paper"
D = f"src/data/{PROFILE}"
OUT = "src/tex/output"
PY = "python"


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


# Outputs of every compute rule: provenance runs after all of them.
COMPUTE = []


rule activation_numbers:
    """Largest JAX-vs-NumPy difference of the activation functions."""
    input:
        "src/shearbridge/activations.py",
        script="src/scripts/num_activations.py",
    output:
        f"{OUT}/activation_maxdiff.txt",
        f"{OUT}/activation_maxdiff_grad.txt",
        f"{OUT}/activation_npoints.txt",
        f"{OUT}/activation_xmax.txt",
    shell:
        "{PY} {input.script}"


rule provenance:
    """Profile, hardware, software versions, commit and compute wall times."""
    input:
        COMPUTE,
        script="src/scripts/num_provenance.py",
    params:
        profile=PROFILE,
        commit=_commit(),
    output:
        [f"{OUT}/{name}.txt" for name in (
            "profile", "profile_description", "hardware", "n_cores", "software",
            "commit", "build_date", "runtime_table", "runtime_total_min")],
    shell:
        "{PY} {input.script}"


CONSTANTS = ["req_lsst_m", "req_lsst_c", "stamp_size", "pixel_scale", "psf_sigma", "psf_fwhm_gauss",
             "g_sigma", "size_scale", "size_min", "flux_range", "offset_max", "noise_grid",
             "n_train", "n_val_pct", "n_test", "n_epochs"]


rule constants:
    """The study's fixed settings, from shearbridge.config."""
    input:
        "src/shearbridge/config.py",
        script="src/scripts/num_constants.py",
    params:
        profile=PROFILE,
    output:
        [f"{OUT}/{name}.txt" for name in CONSTANTS],
    shell:
        "{PY} {input.script}"
