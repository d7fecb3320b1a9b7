# Rules for everything the manuscript needs beyond figure scripts (showyourwork
# includes this file). Data flows one way:
#   config -> simulate -> train / fit -> measure -> src/data/<profile>/ -> summaries -> figures, numbers
# The profile comes from $SHEARBRIDGE_PROFILE (the Makefile sets it from PROFILE=...).
# Expensive outputs live under src/data/<profile>/ so switching profile keeps the other's work.
# Every compute rule records its wall time with `benchmark:` (read by num_provenance.py).
# Every compute rule states what one job needs (threads, resources: mem_mb, runtime in
# minutes, gpus): locally only threads matter, a cluster submit command reads them all
# (profiles/slurm, README "Scaling out").
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError

from shearbridge import study
from shearbridge.config import get_profile, noise_tag
from shearbridge.config.experiments import SEED_VARIANTS
from shearbridge.config.survey import get_tier
from shearbridge.steps.survey import source_digest
from shearbridge.config.converge import get_ladder
from shearbridge.steps.converge import ladder_for_profile
from shearbridge.paper.outputs import script_outputs  # a number script's outputs(): its files
from shearbridge.plan import Plan, git_commit
from shearbridge.steps.bias import BIAS_SETS
from shearbridge.summaries.collect import summary_files

PROFILE = os.environ.get("SHEARBRIDGE_PROFILE", "paper") or "paper"
# JAX's persistent compilation cache for every job (the Makefile sets the same place):
# a network trained at several noise levels, or evaluated by several rules, compiles once.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "shearbridge-jax"),
)
P = get_profile(PROFILE)
try:
    CORES = workflow.cores  # --cores N (make: every core of this machine)
except WorkflowError:  # cluster mode without --cores: no total to take a share of
    CORES = None
# The plan (shearbridge.plan): every data path from the one artifact layout (W.layout, relative to
# the repository), every list of methods and levels from the registry, what one job asks for.
W = Plan(P, cores=CORES, options=config, run_local=workflow.run_local)
L = W.layout
PY = "python"
NOISE = W.noise
STAGS = W.study_tags
CELLS = W.cells
NODE_THREADS, TRAIN_THREADS, TRAIN_MINUTES = W.node_threads, W.train_threads, W.train_minutes
cell_paths = W.cell_paths


def network_inputs(w):
    return W.network_inputs(w.method, w.tag)


wildcard_constraints:
    config="[A-Za-z0-9_]+",
    method="[A-Za-z0-9_]+",
    name="[A-Za-z0-9_]+",
    tag=r"[0-9](\.[0-9]+)?e[-+][0-9]+",
    chunk="[0-9]+",
    ladder="[a-z_]+",
    seed="[0-9]+",
    steps="[0-9]+",
    key="[a-z_]+",


# ---------------------------------------------------------------- compute rules

rule dataset:
    """Simulate one dataset of the profile (GalSim, parallel over cores, written atomically)."""
    output:
        L.manifest("{name}"),
    benchmark:
        L.benchmark("dataset-{name}")
    threads: NODE_THREADS
    resources: **W.job(2)
    shell:
        "{PY} -m shearbridge simulate --dataset {wildcards.name} --profile {PROFILE} --workers {threads}"


rule train:
    """Train one experiment at one noise level (resumes from its checkpoint if interrupted)."""
    input:
        L.manifest("train"),
        L.manifest("test"),
        lambda w: W.train_dataset(w.config, w.tag),
    output:
        L.run_metrics("{config}", "{tag}"),
    benchmark:
        L.benchmark("train-{config}-{tag}")
    params:
        sigma=lambda w: NOISE[w.tag],
        config_hash=lambda w: W.experiment_hash(w.config, w.tag),
    threads: TRAIN_THREADS
    resources: **W.job(4, runtime=TRAIN_MINUTES, gpus=True)
    shell:
        # the CLI restarts itself with the fast-training environment (huge-page malloc,
        # XLA flags; shearbridge.train.runtime) and pins itself to {threads} free core(s)
        "{PY} -m shearbridge train --config {wildcards.config} --noise {params.sigma} --profile {PROFILE}"
        " --threads {threads}"


# A full-budget training takes 5-8 minutes on one core, an ablation step well under one:
# start the long ones first, so that short jobs fill the cores around them instead of one
# long training running alone at the end of the build (measured: the last ShapeNet training
# started 36 minutes into a 55-minute paper build without this).
use rule train as train_full with:
    wildcard_constraints:
        config="|".join(["baseline", "shapenet", *(f"{n}_seed{k}" for n, ks in SEED_VARIANTS.items() for k in ks)]),
    priority: 10


ruleorder: train_full > train


rule evaluate:
    """Test-set RMSE and bias (bootstrap errors) of one trained run."""
    input:
        L.run_metrics("{config}", "{tag}"),
        L.manifest("test"),
    output:
        L.evaluation("{config}", "{tag}"),
        L.evaluation("{config}", "{tag}", suffix="_pred.npz"),
    benchmark:
        L.benchmark("evaluate-{config}-{tag}")
    params:
        sigma=lambda w: NOISE[w.tag],
    resources: **W.job(2)
    shell:
        "{PY} -m shearbridge evaluate --config {wildcards.config} --noise {params.sigma} --profile {PROFILE}"


# Every method on the same test galaxies, against the per-galaxy Cramer-Rao bound.
METHODS = study.names("compare")
ABLATIONS = study.names("ablation")
ABLATION_TAGS = STAGS["ablation"]
DIAGNOSED = study.diagnosed()  # the first gets every diagnosis, the others the per-layer information




rule population_sets:
    """The population study's test sets: every cell's galaxies with their exact bounds (finite differences of
    GalSim for the Sersic and bulge+disk families) and every cell's shear test, rendered while the networks
    train (they need no network)."""
    output:
        L.population("sets.json"),
    benchmark:
        L.benchmark("population-sets")
    threads: 1
    priority: 20
    resources: **W.job(4, runtime=60)
    shell:
        "{PY} -m shearbridge population sets --profile {PROFILE} --threads {threads}"


rule population_train:
    """The population study's networks (PSFNet per seed, its ablations), trained once on fresh noise over
    every level; resumes the entries an interrupted run finished. Built when a method trained once is
    in a study, or asked for: `snakemake src/data/<profile>/results/population.json`."""
    output:
        L.population("training.json"),
    benchmark:
        L.benchmark("population-train")
    threads: TRAIN_THREADS
    priority: 20
    resources: **W.job(4, runtime=TRAIN_MINUTES, gpus=True)
    shell:
        "{PY} -m shearbridge population train --profile {PROFILE} --threads {threads}"




rule population_evaluate:
    """The population study's cell table: every galaxy x PSF family x noise level, PSFNet and the registry's
    population methods, the shear tests, metacal."""
    input:
        L.population("training.json"),
        L.population("sets.json"),
        W.population_runs(),
    output:
        L.population_results(),
    benchmark:
        L.benchmark("population-evaluate")
    threads: 1
    resources: **W.job(4, runtime=60)
    shell:
        "{PY} -m shearbridge population evaluate --profile {PROFILE}"


SURVEY = W.survey_tier  # the in-hour tier of the survey-scale shear test (shearbridge.config.survey)
SURVEY_CODE = source_digest()[:16]  # its sources and numerical packages (a network's weights: in the merge)


rule survey_chunk:
    """One chunk of the survey-scale shear test at this profile's in-hour size: render its galaxies,
    measure them with every method of the survey studies at every survey level, reduce to sums
    (kilobytes; stamps are never written). Its seed comes from its index: a rerun gives the same bytes."""
    input:
        W.survey_inputs(),
    output:
        L.survey_chunk(SURVEY.name, "{chunk}"),
    params:
        code=SURVEY_CODE,  # what its numbers depend on: a change reruns it
    benchmark:
        L.benchmark(f"survey-{SURVEY.name}-{{chunk}}")
    threads: 1
    resources: **W.survey_job(SURVEY)
    shell:
        "{PY} -m shearbridge survey chunk --tier " + SURVEY.name + " --chunk {wildcards.chunk} --profile {PROFILE}"


rule survey_store_chunk:
    """One method's chunk of the survey tier, written into the committed store (src/static/survey/survey/KEY/):
    `make survey`
    (all local cores) or `snakemake -s Snakefile --profile profiles/slurm survey` (a cluster); a finished
    chunk is never redone, so the run resumes after an interruption."""
    input:
        lambda w: W.survey_inputs(w.key),
    output:
        L.survey_store("survey", "{key}", "{chunk}", root="src/static"),
    params:
        code=SURVEY_CODE,  # where Snakemake recorded the run that wrote it, a code change reruns it
    threads: 1
    resources:
        mem_mb=lambda w: W.survey_job(get_tier("survey"), w.key)["mem_mb"],
        runtime=lambda w: W.survey_job(get_tier("survey"), w.key)["runtime"],
    shell:
        "{PY} -m shearbridge survey chunk --tier survey --chunk {wildcards.chunk} --methods {wildcards.key}"
        " --profile {PROFILE} --store"


rule survey:
    """The whole survey tier (not part of ms.pdf's build: the paper reads it where its hash matches)."""
    input:
        W.survey_targets(get_tier("survey")),


rule survey_merge:
    """m, c and alpha of every survey method at every survey level: from the committed survey tier where its
    hash matches this code, else from this build's in-hour chunks (the result says which)."""
    input:
        expand(L.survey_chunk(SURVEY.name, "{chunk}"), chunk=W.survey_chunks(SURVEY)),
    params:
        # the committed chunks it reads, by content: never inputs (a build must not remake them)
        store=W.survey_store_digest(get_tier("survey")),
    output:
        L.survey_results(),
    benchmark:
        L.benchmark("survey-merge")
    threads: 1
    resources: **W.job(1, runtime=15)
    shell:
        "{PY} -m shearbridge survey merge --profile {PROFILE}"


LADDER = ladder_for_profile(P.name)  # the training ladder this build reads (shearbridge.config.converge)


rule converge_rung:
    """One rung of a training ladder (PSFNet, one seed, a complete run of STEPS steps), written into the
    committed store (src/static/converged/LADDER/): `make converge` (all local cores) or
    `snakemake -s Snakefile --profile profiles/slurm converge` (a cluster); a finished rung is never redone."""
    output:
        L.converge_store("{ladder}", "{seed}", "{steps}", ".json", root="src/static"),
        L.converge_store("{ladder}", "{seed}", "{steps}", ".msgpack", root="src/static"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=lambda w: W.converge_job(get_ladder(w.ladder), w.steps)["runtime"],
    shell:
        "{PY} -m shearbridge converge rung --ladder {wildcards.ladder} --seed {wildcards.seed}"
        " --steps {wildcards.steps} --threads {threads}"


rule converge:
    """The survey ladder: PSFNet trained to convergence, three seeds, 1,500 to 24,000 steps (not part of
    ms.pdf's build: the paper reads the rungs whose hash matches its code)."""
    input:
        W.converge_targets(get_ladder("survey")),


rule converge_summary:
    """The build's reading of its ladder: every committed rung with this code's hash evaluated on the
    validation galaxies, the convergence rule per seed (the result says which rungs it read)."""
    input:
        L.population("training.json"),  # its validation galaxies are cached there
    params:
        store=W.converge_store_digest(LADDER),  # the committed rungs, by content: never inputs
    output:
        L.converge_results(),
    threads: 1
    resources: **W.job(2, runtime=30)
    shell:
        "{PY} -m shearbridge converge summary --profile {PROFILE}"


rule diagnose:
    """Fisher information per layer, probes, sub-pixel sensitivity and saliency of the trained baselines;
    per-layer information of the others at the lowest noise and 1e-3 (study.diagnosis_noise)."""
    input:
        [L.run_metrics(e, noise_tag(s)) for i, e in enumerate(DIAGNOSED)
         for s in study.diagnosis_noise(P, primary=i == 0)],
        L.manifest("train"),
        L.manifest("test"),
    output:
        L.diagnosis("diagnosis.json"),
        L.diagnosis("diagnosis.npz"),
    benchmark:
        L.benchmark("diagnose")
    params:
        experiments=",".join(DIAGNOSED),
    threads: NODE_THREADS
    resources: **W.job(4, runtime=60)
    shell:
        # small dense solves: a single-threaded BLAS is 10-50x faster on a busy 2-core machine
        "OPENBLAS_NUM_THREADS=1 {PY} -m shearbridge diagnose --profile {PROFILE}"
        " --experiments {params.experiments}"


rule crlb:
    """Per-galaxy Cramer-Rao bound (flux, centroid, size, g1, g2) of the comparison set, at unit noise."""
    input:
        L.manifest("test"),
    output:
        L.bound(),
    benchmark:
        L.benchmark("crlb-test")
    threads: NODE_THREADS
    resources: **W.job(2)
    shell:
        "{PY} -m shearbridge crlb --profile {PROFILE}"


rule compare:
    """RMSE, RMSE/CRLB and throughput of one method at one noise level."""
    input:
        L.manifest("test"),
        L.bound(),
        network_inputs,
    output:
        L.result("compare", "{method}", "{tag}"),
    benchmark:
        L.benchmark("estimate-{method}-{tag}")
    params:
        sigma=lambda w: NOISE[w.tag],
    threads: 1  # many short jobs: let two run side by side (speeds: rule timing, not these jobs)
    resources: **W.job(2)
    shell:
        "{PY} -m shearbridge compare --method {wildcards.method} --noise {params.sigma} --profile {PROFILE}"


rule metacal:
    """Metacal-calibrated m and c of one method on the round-PSF shear test at one noise level: the
    method on the metacal images of its shear-test galaxies (Fourier-space, with the noise fix)."""
    input:
        L.manifest("shear"),
        network_inputs,
    output:
        L.result("bias_mcal", "{method}", "{tag}"),
    benchmark:
        L.benchmark("metacal-{method}-{tag}")
    params:
        sigma=lambda w: NOISE[w.tag],
    threads: 1
    resources: **W.job(3)
    shell:
        "{PY} -m shearbridge metacal --method {wildcards.method} --noise {params.sigma} --profile {PROFILE}"


rule bias:
    """m and c of one method on a shear-test set at one noise level (kind bias: round PSF;
    bias_psf: the anisotropic PSF, for the PSF leakage)."""
    input:
        lambda w: L.manifest(BIAS_SETS[w.kind]),
        network_inputs,
    output:
        L.result("{kind}", "{method}", "{tag}"),
    wildcard_constraints:
        kind="bias|bias_psf",
    benchmark:
        L.benchmark("estimate-{kind}-{method}-{tag}")
    params:
        sigma=lambda w: NOISE[w.tag],
        psf=lambda w: " --psf-test" if w.kind == "bias_psf" else "",
    threads: 1
    resources: **W.job(2)
    shell:
        "{PY} -m shearbridge bias --method {wildcards.method} --noise {params.sigma} --profile {PROFILE}"
        "{params.psf}"


rule summary_experiment:
    """Metrics, loss curves and predictions of one experiment over the noise grid (a figure summary)."""
    input:
        lambda w: expand(L.evaluation(w.experiment, "{tag}"),
                         tag=study.study_tags(P, "evaluate", w.experiment)),
    output:
        L.summary("{experiment}.json"),
        L.summary("{experiment}_pred.npz"),
    wildcard_constraints:
        experiment="|".join(study.names("evaluate")),
    shell:
        "{PY} -m shearbridge summarize {wildcards.experiment} --profile {PROFILE}"


# Learning curves (RMSE/CRLB against training compute) from the runs' per-epoch snapshots.
LEARN_EXPERIMENTS = study.names("learning")
LEARN_TAGS = STAGS["learning"]


rule learning:
    """Evaluate every parameter snapshot of one run on the comparison set (no training)."""
    input:
        L.run_metrics("{config}", "{tag}"),
        L.bound(),
    output:
        L.result("learning", "{config}", "{tag}"),
    benchmark:
        L.benchmark("learning-{config}-{tag}")
    params:
        sigma=lambda w: NOISE[w.tag],
    resources: **W.job(2)
    shell:
        "{PY} -m shearbridge learning --config {wildcards.config} --noise {params.sigma} --profile {PROFILE}"


# ------------------------------------------------------------------- timing study
# Every method's galaxies/s side by side in one process (networks: inference and one
# training step): the registry's timing study.
TIMED_NETWORKS = study.names("timing", kind="network")
TIMED_METHODS = TIMED_NETWORKS + study.names("timing", kind="classical")
TIMING_TAGS = STAGS["timing"]


rule timing:
    """galaxies/s of every method and training-step rate of every network (timing.json)."""
    input:
        L.manifest("test"),
        expand(L.run_metrics("{run}", "{tag}"), tag=TIMING_TAGS,
               run=[r for r in dict.fromkeys(map(study.run_of, TIMED_METHODS)) if r]),
        [L.population("training.json")] if any(map(study.trained_once, TIMED_METHODS)) else [],
    output:
        L.timing(),
    benchmark:
        L.benchmark("timing")
    params:
        networks=",".join(TIMED_NETWORKS),
        threads=TRAIN_THREADS,
    # all cores reserved so that nothing else runs while timing; the process itself
    # uses as many cores as one training does (one on a CPU machine), and its GPUs
    threads: NODE_THREADS
    resources: **W.job(4, gpus=True)
    shell:
        "{PY} -m shearbridge timing --networks {params.networks} --profile {PROFILE}"
        " --threads {params.threads}"


# ------------------------------------------- robustness (RQ2) and bias against S/N (RQ5)
from shearbridge.steps.robustness import ROBUST_DATASETS

BIAS_GRID_METHODS = study.names("bias_grid")
ROBUST_METHODS = study.names("robustness")
ROBUST_TAGS = STAGS["robustness"]


rule crlb_fd:
    """Finite-difference GalSim Cramer-Rao bound of the first galaxies of one robustness set."""
    input:
        L.manifest("{name}"),
    output:
        L.bound_fd("{name}"),
    benchmark:
        L.benchmark("crlb-fd-{name}")
    resources: **W.job(2)
    shell:
        "{PY} -m shearbridge crlb --dataset {wildcards.name} --profile {PROFILE}"


rule robustness:
    """RMSE/CRLB of one method on every robustness set at one noise level (one process: the
    method compiles once for all sets)."""
    input:
        expand(L.manifest("{name}"), name=ROBUST_DATASETS),
        expand(L.bound_fd("{name}"), name=ROBUST_DATASETS),
        network_inputs,
    output:
        expand(L.robustness("{{method}}", "{name}", "{{tag}}"), name=ROBUST_DATASETS),
    benchmark:
        L.benchmark("robustness-{method}-{tag}")
    params:
        sigma=lambda w: NOISE[w.tag],
        datasets=" ".join(ROBUST_DATASETS),
    threads: 1
    resources: **W.job(2)
    shell:
        "{PY} -m shearbridge robustness --method {wildcards.method} --dataset {params.datasets}"
        " --noise {params.sigma} --profile {PROFILE}"


# ------------------------------------------- the shear-noise yardstick: n_eff per method and S/N (issue 16, item 4)
rule yardstick:
    """One method on the comparison galaxies with a bound, in two independent noise realisations."""
    input:
        L.manifest("test"),
        network_inputs,
    output:
        L.result("yardstick", "{method}", "{tag}", suffix=".npz"),
    benchmark:
        L.benchmark("yardstick-{method}-{tag}")
    params:
        sigma=lambda w: NOISE[w.tag],
    threads: 1
    resources: **W.job(2)
    shell:
        "{PY} -m shearbridge yardstick --method {wildcards.method} --noise {params.sigma} --profile {PROFILE}"


# ------------------------------------------- the low-noise floor and the weight fractions (issue 15, items 4, 6)
from shearbridge.diagnosis.floor_plan import FLOOR_METHODS as FLOOR_BINNED

FLOOR_METHODS = [m for m in FLOOR_BINNED if m in METHODS]
FLOOR_TAG = noise_tag(P.noise_grid[0])  # the profile's lowest noise level


rule floor:
    """Error/CRLB at the lowest noise level against galaxy size and out-of-stamp flux (four methods),
    the moments-only estimator's numerics (float64, 16 iterations, no pixel term), noise-free split."""
    input:
        L.manifest("test"),
        L.manifest("train"),
        L.bound(),
        # the compare rule declares the .json; the .npz read here is written beside it
        [L.result("compare", m, FLOOR_TAG) for m in FLOOR_METHODS],
        "src/shearbridge/models/moments.py",
    output:
        L.diagnosis("floor.json"),
    benchmark:
        L.benchmark("floor")
    threads: 1
    resources: **W.job(2)
    shell:
        "{PY} -m shearbridge floor --profile {PROFILE}"


rule tune_weight_fractions:
    """The adaptive-moment weight fractions chosen on the trainer's validation split, and whether
    models/moments.py's WEIGHT_FRACTIONS are that choice (num_floor.py refuses to build if not)."""
    input:
        L.manifest("train"),
        "src/shearbridge/models/moments.py",
    output:
        L.diagnosis("weight_fractions.json"),
    benchmark:
        L.benchmark("tune")
    threads: 1
    resources: **W.job(2)
    shell:
        "{PY} -m shearbridge tune --profile {PROFILE}"


rule tune_anacal:
    """AnaCal's kernel scale and weight constant chosen on training galaxies at the survey noise, and
    whether the estimator's defaults are that choice (num_bias.py refuses to build the paper if not)."""
    input:
        L.manifest("train"),
        "src/shearbridge/estimators/anacal.py",
        "src/shearbridge/steps/tune_anacal.py",
    output:
        L.diagnosis("anacal_tuning.json"),
    benchmark:
        L.benchmark("tune-anacal")
    threads: 1
    resources: **W.job(2)
    shell:
        "{PY} -m shearbridge tune-anacal --profile {PROFILE}"




# ------------------------------------------------- summaries (profile-agnostic paths)
# `python -m shearbridge summarize WHAT` turns what the steps wrote into the small files the figure
# and number scripts read. WHAT -> what it reads; the files it writes: summaries.collect.summary_files.
SUMMARIES = {
    "stamps": [L.manifest("test")],
    "diagnosis": [L.diagnosis("diagnosis.json"), L.diagnosis("diagnosis.npz")],
    "learning": expand(L.result("learning", "{config}", "{tag}"), config=LEARN_EXPERIMENTS, tag=LEARN_TAGS),
    # every method's RMSE/CRLB and bias results (fig_rmse_vs_noise and the numbers)
    "compare": cell_paths(L.result("compare", "{method}", "{tag}"), "compare")
    + cell_paths(L.result("bias", "{method}", "{tag}"), "bias")
    + expand(L.result("compare", "{method}", "{tag}"), method=study.names("seeds"), tag=STAGS["seeds"]),
    "timing": [L.timing()],
    "robustness": expand(L.robustness("{method}", "{name}", "{tag}"), method=ROBUST_METHODS, name=ROBUST_DATASETS,
                         tag=ROBUST_TAGS),
    # m, c at every noise level of every method of the bias_grid study, and metacal's
    "bias": [p for k in BIAS_SETS for p in cell_paths(L.result(k, "{method}", "{tag}"), "bias_grid")]
    + expand(L.result("bias_mcal", "{method}", "{tag}"), method=study.names("metacal"), tag=STAGS["metacal"]),
    "population": [L.population_results()],
    "survey": [L.survey_results()],
    "converge": [L.converge_results()],
    # sigma_meas / sigma_CRLB and n_eff lost of every bias_grid method at every level
    "yardstick": cell_paths(L.result("yardstick", "{method}", "{tag}", suffix=".npz"), "bias_grid")
    + cell_paths(L.result("bias", "{method}", "{tag}"), "bias_grid") + [L.bound()],
    "floor": [L.diagnosis("floor.json"), L.diagnosis("weight_fractions.json")],
}
# Summaries with a wall time of their own in the provenance table: WHAT -> (inputs, benchmark name).
TIMED_SUMMARIES = {
    # NumPy references vs JAX/Flax building blocks (seconds; no data needed)
    "translation": (["src/shearbridge/models/parity.py", "src/shearbridge/models/numpy_ref.py"], "translation"),
    # ablation ladder and removals (reduced epochs: shearbridge.config.ablation) next to the full-budget networks
    "ablation": (expand(L.result("compare", "{method}", "{tag}"), method=ABLATIONS + study.names("evaluate"),
                        tag=ABLATION_TAGS)
                 + expand(L.run_metrics("{method}", "{tag}"), method=ABLATIONS + study.names("evaluate"),
                          tag=ABLATION_TAGS), "summary-ablation"),
}

for _what, _inputs in SUMMARIES.items():

    rule:
        name:
            f"summary_{_what}"
        input:
            _inputs,
        output:
            [L.summary(f) for f in summary_files(_what)],
        params:
            what=_what,  # a loop variable: read through params (a rule's shell runs later)
        shell:
            "{PY} -m shearbridge summarize {params.what} --profile {PROFILE}"


for _what, (_inputs, _bench) in TIMED_SUMMARIES.items():

    rule:
        name:
            f"summary_{_what}"
        input:
            _inputs,
        output:
            [L.summary(f) for f in summary_files(_what)],
        benchmark:
            L.benchmark(_bench)
        params:
            what=_what,  # a loop variable: read through params (a rule's shell runs later)
        shell:
            "{PY} -m shearbridge summarize {params.what} --profile {PROFILE}"


# ------------------------------------------------------------------- numbers
# Each src/scripts/num_NAME.py declares the variables it writes (its outputs(profile)); here, only
# what it reads. NAME -> inputs. Provenance runs after every compute rule (COMPUTE).
COMPUTE = [L.summary(f"{e}.json") for e in study.names("evaluate")] + [
    L.summary(name) for name in ("learning.json", "stamps.npz", "translation.json", "compare.json", "diagnosis.json",
                                 "timing.json", "ablation.json", "bias.json", "yardstick.json", "floor.json",
                                 "survey.json", "converge.json")
] + [L.population_results()]
NUMBERS = {
    "baseline": [L.summary("baseline.json")],
    "translation": [L.summary("translation.json")],
    "compare": [L.summary("compare.json")],
    "diagnosis": [L.summary("diagnosis.json")],
    "learning": [L.summary("learning.json")],
    "speed": [L.summary("timing.json")],
    "ablation": [L.summary("ablation.json")],
    "activations": ["src/shearbridge/models/activations.py"],  # largest JAX-vs-NumPy difference
    "population": [L.summary("population.json")],
    "bias": [L.summary("bias.json")] + ([L.diagnosis("anacal_tuning.json")] if "anacal" in BIAS_GRID_METHODS else []),
    "yardstick": [L.summary("yardstick.json")],
    "survey": [L.summary("survey.json")],
    "converge": [L.summary("converge.json")],
    "floor": [L.summary("floor.json"), "src/shearbridge/models/moments.py"],
    # profile, hardware, software versions, commit and compute wall times
    "provenance": COMPUTE,
    # the study's fixed settings (shearbridge.config)
    "constants": [str(f) for f in sorted(Path("src/shearbridge/config").glob("*.py"))]
    + ["src/shearbridge/models/enhanced.py"],
}

for _name, _inputs in NUMBERS.items():

    rule:
        name:
            f"{_name}_numbers"
        input:
            _inputs,
            script=f"src/scripts/num_{_name}.py",
        params:
            commit=git_commit() if _name == "provenance" else "",  # rerun when the commit changes
        output:
            script_outputs(f"src/scripts/num_{_name}.py", P),
        shell:
            "{PY} {input.script}"
