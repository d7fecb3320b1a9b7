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
