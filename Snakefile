# Rules for everything the manuscript needs beyond figure scripts (showyourwork
# includes this file). Data flows one way:
#   config -> simulate -> train / fit -> measure -> src/data/<profile>/ -> summaries -> figures, numbers
# The profile comes from $SHEARBRIDGE_PROFILE (the Makefile sets it from PROFILE=...).
# Expensive outputs live under src/data/<profile>/ so switching profile keeps the other's work.
# Every compute rule records its wall time with `benchmark:` (read by num_provenance.py).
# Every compute rule states what one job needs (threads, resources: mem_mb, runtime in
# minutes, gpus): locally only threads matter, a cluster submit command reads them all
# (profiles/slurm, README "Scaling out").
import math
import os
import subprocess

from snakemake.exceptions import WorkflowError

from shearbridge import study
from shearbridge.config import SimConfig, get_profile, noise_tag
from shearbridge.config.experiments import SEED_VARIANTS
from shearbridge.steps.bias import BIAS_SETS

PROFILE = os.environ.get("SHEARBRIDGE_PROFILE", "paper") or "paper"
# JAX's persistent compilation cache for every job (the Makefile sets the same place):
# a network trained at several noise levels, or evaluated by several rules, compiles once.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "shearbridge-jax"),
)
P = get_profile(PROFILE)
D = f"src/data/{PROFILE}"
S = "src/data/summary"
OUT = "src/tex/output"
PY = "python"
NOISE = {noise_tag(s): s for s in P.noise_grid}
TAGS = list(NOISE)
# Every list of methods and noise levels below comes from the study registry (shearbridge.study).
STAGS = {st: study.study_tags(P, st) for st in study.STUDIES}
# (method, tag) of each study: a method may run at some of a study's levels only (ShapeNet: the pair levels).
CELLS = {st: study.cells(P, st) for st in study.STUDIES}


def cell_paths(pattern, st):
    """`pattern` (holding {method} and {tag}) for every (method, level) of study `st`."""
    return [pattern.format(method=m, tag=t) for m, t in CELLS[st]]

wildcard_constraints:
    config="[A-Za-z0-9_]+",
    method="[A-Za-z0-9_]+",
    name="[A-Za-z0-9_]+",
    tag=r"[0-9](\.[0-9]+)?e[-+][0-9]+",


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def experiment_hash(config, tag):
    """Rerun a training when its experiment config changes (Snakemake params trigger)."""
    from shearbridge.config import config_hash
    from shearbridge.config.experiments import get_experiment

    return config_hash(get_experiment(config, P, NOISE[tag]))


# ------------------------------------------------------- what one job asks for
try:
    CORES = workflow.cores  # --cores N (make: every core of this machine)
except WorkflowError:  # cluster mode without --cores: no total to take a share of
    CORES = None
# Threads of the rules that use a whole machine (dataset, crlb, diagnose, timing): every core
# given to Snakemake (it caps threads at --cores), as before; in cluster mode without --cores
# what one job asks the scheduler for: `--config threads=N`, default 8. (A cluster job's own
# Snakemake runs with --cores all, the cores the scheduler gave it, and caps again.)
NODE_THREADS = int(config.get("threads", CORES or 8))


def _nvidia_gpu():
    return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvidiactl")


def _gpus_per_training():
    """GPUs one training (and the timing study) asks for: `--config gpus=N`, else $SHEARBRIDGE_GPUS.
    Neither set: on a cluster none (the submitting host says nothing about the compute nodes);
    locally, where the jobs run on this host, one if it has an NVIDIA GPU."""
    value = config.get("gpus", os.environ.get("SHEARBRIDGE_GPUS", ""))
    if str(value).strip():
        return int(value)
    return int(workflow.run_local and _nvidia_gpu())


GPUS = _gpus_per_training()
# CPU: one single-threaded training per core (measured: more samples/s in total than
# one two-threaded training at a time, see README "Speed"). GPU: one training at a time.
TRAIN_THREADS = NODE_THREADS if GPUS else 1


def mem_mb(copies):
    """Memory of one job: 2 GB (Python, JAX, XLA) plus `copies` float32 copies of the profile's
    largest dataset, rounded up to a whole GB (paper profile: dataset 3000, train 4000 MB)."""
    stamps = max(P.n_train, P.n_test, 4 * P.n_shear_pairs)
    data_mb = stamps * SimConfig().stamp_size_px ** 2 * 4 / 2**20
    return 1000 * math.ceil((2000 + copies * data_mb) / 1000)


# Wall time (minutes) of one training: a full-budget paper network takes 5-8 min on one core
# (README "Speed"); a profile with more training compute (full: 114x, meant for a GPU) gets 24 h.
_PAPER = get_profile("paper")
TRAIN_MINUTES = 60 if P.n_train * P.epochs <= _PAPER.n_train * _PAPER.epochs else 24 * 60


def train_dataset_input(config, tag):
    """The experiment's own training set (e.g. train_mix for shapenet_mix) must exist before training."""
    from shearbridge.config.experiments import get_experiment

    return f"{D}/datasets/{get_experiment(config, P, NOISE[tag]).train_dataset}/manifest.json"


# ---------------------------------------------------------------- compute rules

rule dataset:
    """Simulate one dataset of the profile (GalSim, parallel over cores, written atomically)."""
    output:
        f"{D}/datasets/{{name}}/manifest.json",
    benchmark:
        f"{D}/benchmarks/dataset-{{name}}.tsv"
    params:
        profile=PROFILE,
    threads: NODE_THREADS
    resources:
        mem_mb=mem_mb(2),
        runtime=30,
    shell:
        "{PY} -m shearbridge simulate --dataset {wildcards.name} --profile {params.profile} --workers {threads}"


rule train:
    """Train one experiment at one noise level (resumes from its checkpoint if interrupted)."""
    input:
        f"{D}/datasets/train/manifest.json",
        f"{D}/datasets/test/manifest.json",
        lambda w: train_dataset_input(w.config, w.tag),
    output:
        f"{D}/runs/{{config}}/noise{{tag}}/metrics.json",
    benchmark:
        f"{D}/benchmarks/train-{{config}}-{{tag}}.tsv"
    params:
        profile=PROFILE,
        sigma=lambda w: NOISE[w.tag],
        config_hash=lambda w: experiment_hash(w.config, w.tag),
    threads: TRAIN_THREADS
    resources:
        mem_mb=mem_mb(4),
        runtime=TRAIN_MINUTES,
        gpus=GPUS,
    shell:
        # the CLI restarts itself with the fast-training environment (huge-page malloc,
        # XLA flags; shearbridge.train.runtime) and pins itself to {threads} free core(s)
        "{PY} -m shearbridge train --config {wildcards.config} --noise {params.sigma} --profile {params.profile}"
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
        f"{D}/runs/{{config}}/noise{{tag}}/metrics.json",
        f"{D}/datasets/test/manifest.json",
    output:
        f"{D}/results/{{config}}/noise{{tag}}.json",
        f"{D}/results/{{config}}/noise{{tag}}_pred.npz",
    benchmark:
        f"{D}/benchmarks/evaluate-{{config}}-{{tag}}.tsv"
    params:
        profile=PROFILE,
        sigma=lambda w: NOISE[w.tag],
    resources:
        mem_mb=mem_mb(2),
        runtime=30,
    shell:
        "{PY} -m shearbridge evaluate --config {wildcards.config} --noise {params.sigma} --profile {params.profile}"


# Every method on the same test galaxies, against the per-galaxy Cramer-Rao bound.
METHODS = study.names("compare")
SEEDED = [n for n in SEED_VARIANTS if n in METHODS]  # headline networks retrained with other seeds (study "seeds")
BIAS_TAGS = STAGS["bias"]  # paired shear test (m, c) in the comparison's table
ABLATIONS = study.names("ablation")
ABLATION_TAGS = STAGS["ablation"]
DIAGNOSED = study.diagnosed()  # the first gets every diagnosis, the others the per-layer information


def network_inputs(w):
    """A network's comparison, bias or robustness job needs its trained run at that noise level (a network
    trained once for every level, the population study's: that training)."""
    if study.trained_once(w.method):
        return [f"{D}/population/training.json"]
    run = study.run_of(w.method)
    return [f"{D}/runs/{run}/noise{w.tag}/metrics.json"] if run else []


rule population_sets:
    """The population study's test sets: every cell's galaxies with their exact bounds (finite differences of
    GalSim for the Sersic and bulge+disk families) and every cell's shear test, rendered while the networks
    train (they need no network)."""
    output:
        f"{D}/population/sets.json",
    benchmark:
        f"{D}/benchmarks/population-sets.tsv"
    params:
        profile=PROFILE,
    threads: 1
    priority: 20
    resources:
        mem_mb=mem_mb(4),
        runtime=60,
    shell:
        "{PY} -m shearbridge population sets --profile {params.profile} --threads {threads}"


rule population_train:
    """The population study's networks (PSFNet per seed, its ablations), trained once on fresh noise over
    every level; resumes the entries an interrupted run finished. Built when a method trained once is
    in a study, or asked for: `snakemake src/data/<profile>/results/population.json`."""
    output:
        f"{D}/population/training.json",
    benchmark:
        f"{D}/benchmarks/population-train.tsv"
    params:
        profile=PROFILE,
    threads: TRAIN_THREADS
    priority: 20
    resources:
        mem_mb=mem_mb(4),
        runtime=TRAIN_MINUTES,
        gpus=GPUS,
    shell:
        "{PY} -m shearbridge population train --profile {params.profile} --threads {threads}"


def population_runs():
    """The per-level runs the population study's networks are measured with: those the registry trains
    anyway at the population plan's levels (shearbridge.steps.population_methods)."""
    from shearbridge.config.population import population_plan

    plan = population_plan(P)
    levels = set(plan.cell_noise) | set(plan.shear_noise)
    nets = {m.experiment for st in ("population", "population_shear") for m in study.methods(st) if m.experiment}
    return [f"{D}/runs/{e}/noise{noise_tag(s)}/metrics.json" for e, s in study.trainings(P)
            if e in nets and any(math.isclose(s, x) for x in levels)]


rule population_evaluate:
    """The population study's cell table: every galaxy x PSF family x noise level, PSFNet and the registry's
    population methods, the shear tests, metacal."""
    input:
        f"{D}/population/training.json",
        f"{D}/population/sets.json",
        population_runs(),
    output:
        f"{D}/results/population.json",
    benchmark:
        f"{D}/benchmarks/population-evaluate.tsv"
    params:
        profile=PROFILE,
    threads: 1
    resources:
        mem_mb=mem_mb(4),
        runtime=60,
    shell:
        "{PY} -m shearbridge population evaluate --profile {params.profile}"


rule diagnose:
    """Fisher information per layer, probes, sub-pixel sensitivity and saliency of the trained baselines;
    per-layer information of the others at the lowest noise and 1e-3 (study.diagnosis_noise)."""
    input:
        [f"{D}/runs/{e}/noise{noise_tag(s)}/metrics.json" for i, e in enumerate(DIAGNOSED)
         for s in study.diagnosis_noise(P, primary=i == 0)],
        f"{D}/datasets/train/manifest.json",
        f"{D}/datasets/test/manifest.json",
    output:
        f"{D}/diagnosis/diagnosis.json",
        f"{D}/diagnosis/diagnosis.npz",
    benchmark:
        f"{D}/benchmarks/diagnose.tsv"
    params:
        profile=PROFILE,
        experiments=",".join(DIAGNOSED),
    threads: NODE_THREADS
    resources:
        mem_mb=mem_mb(4),
        runtime=60,
    shell:
        # small dense solves: a single-threaded BLAS is 10-50x faster on a busy 2-core machine
        "OPENBLAS_NUM_THREADS=1 {PY} -m shearbridge diagnose --profile {params.profile}"
        " --experiments {params.experiments}"


rule summary_diagnosis:
    input:
        f"{D}/diagnosis/diagnosis.json",
        f"{D}/diagnosis/diagnosis.npz",
    output:
        f"{S}/diagnosis.json",
        f"{S}/diagnosis.npz",
    params:
        profile=PROFILE,
    shell:
        "{PY} -m shearbridge summarize diagnosis --profile {params.profile}"


rule crlb:
    """Per-galaxy Cramer-Rao bound (flux, centroid, size, g1, g2) of the comparison set, at unit noise."""
    input:
        f"{D}/datasets/test/manifest.json",
    output:
        f"{D}/crlb/test.npz",
    benchmark:
        f"{D}/benchmarks/crlb-test.tsv"
    params:
        profile=PROFILE,
    threads: NODE_THREADS
    resources:
        mem_mb=mem_mb(2),
        runtime=30,
    shell:
        "{PY} -m shearbridge crlb --profile {params.profile}"


rule compare:
    """RMSE, RMSE/CRLB and throughput of one method at one noise level."""
    input:
        f"{D}/datasets/test/manifest.json",
        f"{D}/crlb/test.npz",
        network_inputs,
    output:
        f"{D}/results/compare/{{method}}/noise{{tag}}.json",
    benchmark:
        f"{D}/benchmarks/estimate-{{method}}-{{tag}}.tsv"
    params:
        profile=PROFILE,
        sigma=lambda w: NOISE[w.tag],
    threads: 1  # many short jobs: let two run side by side (speeds: rule timing, not these jobs)
    resources:
        mem_mb=mem_mb(2),
        runtime=30,
    shell:
        "{PY} -m shearbridge compare --method {wildcards.method} --noise {params.sigma} --profile {params.profile}"


rule metacal:
    """Metacal-calibrated m and c of one method on the round-PSF shear test at one noise level: the
    method on the metacal images of its shear-test galaxies (Fourier-space, with the noise fix)."""
    input:
        f"{D}/datasets/shear/manifest.json",
        network_inputs,
    output:
        f"{D}/results/bias_mcal/{{method}}/noise{{tag}}.json",
    benchmark:
        f"{D}/benchmarks/metacal-{{method}}-{{tag}}.tsv"
    params:
        profile=PROFILE,
        sigma=lambda w: NOISE[w.tag],
    threads: 1
    resources:
        mem_mb=mem_mb(3),
        runtime=30,
    shell:
        "{PY} -m shearbridge metacal --method {wildcards.method} --noise {params.sigma} --profile {params.profile}"


rule bias:
    """m and c of one method on a shear-test set at one noise level (kind bias: round PSF;
    bias_psf: the anisotropic PSF, for the PSF leakage)."""
    input:
        lambda w: f"{D}/datasets/{BIAS_SETS[w.kind]}/manifest.json",
        network_inputs,
    output:
        f"{D}/results/{{kind}}/{{method}}/noise{{tag}}.json",
    wildcard_constraints:
        kind="bias|bias_psf",
    benchmark:
        f"{D}/benchmarks/estimate-{{kind}}-{{method}}-{{tag}}.tsv"
    params:
        profile=PROFILE,
        sigma=lambda w: NOISE[w.tag],
        psf=lambda w: " --psf-test" if w.kind == "bias_psf" else "",
    threads: 1
    resources:
        mem_mb=mem_mb(2),
        runtime=30,
    shell:
        "{PY} -m shearbridge bias --method {wildcards.method} --noise {params.sigma} --profile {params.profile}"
        "{params.psf}"


# ------------------------------------------------- summaries (profile-agnostic paths)

rule summary_stamps:
    input:
        f"{D}/datasets/test/manifest.json",
    output:
        f"{S}/stamps.npz",
    params:
        profile=PROFILE,
    shell:
        "{PY} -m shearbridge summarize stamps --profile {params.profile}"


rule summary_translation:
    """NumPy references vs JAX/Flax building blocks (seconds; no data needed)."""
    input:
        "src/shearbridge/models/parity.py",
        "src/shearbridge/models/numpy_ref.py",
    output:
        f"{S}/translation.json",
    benchmark:
        f"{D}/benchmarks/translation.tsv"
    params:
        profile=PROFILE,
    shell:
        "{PY} -m shearbridge summarize translation --profile {params.profile}"


rule summary_experiment:
    """Metrics, loss curves and predictions of one experiment over the noise grid."""
    input:
        lambda w: expand(f"{D}/results/{w.experiment}/noise{{tag}}.json",
                         tag=study.study_tags(P, "evaluate", w.experiment)),
    output:
        f"{S}/{{experiment}}.json",
        f"{S}/{{experiment}}_pred.npz",
    wildcard_constraints:
        experiment="|".join(study.names("evaluate")),
    params:
        profile=PROFILE,
    shell:
        "{PY} -m shearbridge summarize {wildcards.experiment} --profile {params.profile}"


# Learning curves (RMSE/CRLB against training compute) from the runs' per-epoch snapshots.
LEARN_EXPERIMENTS = study.names("learning")
LEARN_TAGS = STAGS["learning"]


rule learning:
    """Evaluate every parameter snapshot of one run on the comparison set (no training)."""
    input:
        f"{D}/runs/{{config}}/noise{{tag}}/metrics.json",
        f"{D}/crlb/test.npz",
    output:
        f"{D}/results/learning/{{config}}/noise{{tag}}.json",
    benchmark:
        f"{D}/benchmarks/learning-{{config}}-{{tag}}.tsv"
    params:
        profile=PROFILE,
        sigma=lambda w: NOISE[w.tag],
    resources:
        mem_mb=mem_mb(2),
        runtime=30,
    shell:
        "{PY} -m shearbridge learning --config {wildcards.config} --noise {params.sigma} --profile {params.profile}"


rule summary_learning:
    input:
        expand(f"{D}/results/learning/{{config}}/noise{{tag}}.json", config=LEARN_EXPERIMENTS, tag=LEARN_TAGS),
    output:
        f"{S}/learning.json",
    params:
        profile=PROFILE,
    shell:
        "{PY} -m shearbridge summarize learning --profile {params.profile}"


rule learning_numbers:
    input:
        f"{S}/learning.json",
        script="src/scripts/num_learning.py",
    output:
        [f"{OUT}/learn_{what}_{e}_{t}.txt" for what in ("first", "final") for e in LEARN_EXPERIMENTS
         for t in LEARN_TAGS],
        [f"{OUT}/learn_matched_{e}_{t}.txt" for e in LEARN_EXPERIMENTS for t in LEARN_TAGS],
        [f"{OUT}/learn_gain_{e}_{t}.txt" for e in LEARN_EXPERIMENTS for t in LEARN_TAGS],
        f"{OUT}/learn_matched_flops.txt",
    shell:
        "{PY} {input.script}"


rule summary_compare:
    """All methods' RMSE/CRLB and bias results, for fig_rmse_vs_noise and the numbers."""
    input:
        cell_paths(f"{D}/results/compare/{{method}}/noise{{tag}}.json", "compare"),
        cell_paths(f"{D}/results/bias/{{method}}/noise{{tag}}.json", "bias"),
        expand(f"{D}/results/compare/{{method}}/noise{{tag}}.json", method=study.names("seeds"),
               tag=STAGS["seeds"]),
    output:
        f"{S}/compare.json",
    params:
        profile=PROFILE,
        methods=",".join(METHODS),
        bias=",".join(BIAS_TAGS),
    shell:
        "{PY} -m shearbridge summarize compare --profile {params.profile}"


# ------------------------------------------------------------------- numbers

rule baseline_numbers:
    input:
        f"{S}/baseline.json",
        script="src/scripts/num_baseline.py",
    output:
        [f"{OUT}/baseline_rmse_{t}.txt" for t in TAGS],
        [f"{OUT}/baseline_m_{t}.txt" for t in TAGS],
        f"{OUT}/baseline_n_test.txt",
        f"{OUT}/baseline_best_epochs.txt",
        f"{OUT}/baseline_train_rate.txt",
    shell:
        "{PY} {input.script}"


rule translation_numbers:
    input:
        f"{S}/translation.json",
        script="src/scripts/num_translation.py",
    output:
        [f"{OUT}/translation_{n}.txt" for n in ("n_cases", "n_passed", "conv_maxabs", "conv_maxrel_u",
                                                "conv_bound_u", "pool_maxabs", "maxpool_maxabs")],
    shell:
        "{PY} {input.script}"


rule compare_numbers:
    input:
        f"{S}/compare.json",
        script="src/scripts/num_compare.py",
    output:
        [f"{OUT}/ratio_{m}_{t}.txt" for m, t in CELLS["compare"]],
        [f"{OUT}/robratio_{m}_{t}.txt" for m, t in CELLS["compare"]],
        [f"{OUT}/fail_{m}_{t}.txt" for m, t in CELLS["compare"]],
        [f"{OUT}/ratioall_{m}_{t}.txt" for m, t in CELLS["compare"]],
        [f"{OUT}/ncommon_{t}.txt" for t in TAGS],
        [f"{OUT}/snr_{t}.txt" for t in TAGS],
        [f"{OUT}/gain_{a}_{b}_{t}.txt" for a, b in study.TRAINING_GAIN if {a, b} <= set(METHODS)
         for t in TAGS if (a, t) in CELLS["compare"] and (b, t) in CELLS["compare"]],
        f"{OUT}/ntotal_compare.txt",
        [f"{OUT}/seedsd_{n}_{t}.txt" for n in SEEDED for t in STAGS["seeds"]],
        f"{OUT}/n_seeds.txt",
        f"{OUT}/compare_table.txt",
        f"{OUT}/crlb_rms_1e-05.txt",
        f"{OUT}/crlb_median_1e-05.txt",
        f"{OUT}/n_crlb.txt",
        f"{OUT}/crlb_band_pct.txt",
        f"{OUT}/mlfit_impl.txt",
        f"{OUT}/ngmix_status.txt",
        f"{OUT}/hypothesis_ratio_low.txt",
        [f"{OUT}/improve_shapenet_{t}.txt" for m, t in CELLS["compare"] if m == "shapenet"],
        f"{OUT}/shapenet_within2.txt",
    shell:
        "{PY} {input.script}"


rule diagnosis_numbers:
    input:
        f"{S}/diagnosis.json",
        script="src/scripts/num_diagnosis.py",
    output:
        [f"{OUT}/info_{mode}_{layer}_{t}.txt" for mode in ("fixed", "prior")
         for layer in ("pool1", "pool2", "relu3", "out", "dense1", "convpool_min") for t in TAGS],
        [f"{OUT}/{name}_{t}.txt" for name in ("probe_best", "probe_best_layer", "probe_network",
                                                "saliency_corr", "saliency_eff") for t in TAGS],
        [f"{OUT}/{name}.txt" for name in ("info_n_galaxies", "info_window", "probe_n_train",
                                          "subpixel_ratio_small", "subpixel_size_small",
                                          "subpixel_avg_small", "subpixel_blur_small")],
    shell:
        "{PY} {input.script}"


# Outputs of every compute rule: provenance runs after all of them.
COMPUTE = [f"{S}/baseline.json", f"{S}/shapenet.json", f"{S}/learning.json", f"{S}/stamps.npz", f"{S}/translation.json", f"{S}/compare.json",
           f"{S}/diagnosis.json"]


# ------------------------------------------------------------------- timing study
# Every method's galaxies/s side by side in one process (networks: inference and one
# training step): the registry's timing study.
TIMED_NETWORKS = study.names("timing", kind="network")
TIMED_METHODS = TIMED_NETWORKS + study.names("timing", kind="classical")
TIMING_TAGS = STAGS["timing"]


rule timing:
    """galaxies/s of every method and training-step rate of every network (timing.json)."""
    input:
        f"{D}/datasets/test/manifest.json",
        expand(f"{D}/runs/{{run}}/noise{{tag}}/metrics.json", tag=TIMING_TAGS,
               run=[r for r in dict.fromkeys(map(study.run_of, TIMED_METHODS)) if r]),
        [f"{D}/population/training.json"] if any(map(study.trained_once, TIMED_METHODS)) else [],
    output:
        f"{D}/timing.json",
    benchmark:
        f"{D}/benchmarks/timing.tsv"
    params:
        profile=PROFILE,
        networks=",".join(TIMED_NETWORKS),
        threads=TRAIN_THREADS,
    # all cores reserved so that nothing else runs while timing; the process itself
    # uses as many cores as one training does (one on a CPU machine), and its GPUs
    threads: NODE_THREADS
    resources:
        mem_mb=mem_mb(4),
        runtime=30,
        gpus=GPUS,
    shell:
        "{PY} -m shearbridge timing --networks {params.networks} --profile {params.profile}"
        " --threads {params.threads}"


rule summary_timing:
    input:
        f"{D}/timing.json",
    output:
        f"{S}/timing.json",
    params:
        profile=PROFILE,
    shell:
        "{PY} -m shearbridge summarize timing --profile {params.profile}"


rule speed_numbers:
    input:
        f"{S}/timing.json",
        script="src/scripts/num_speed.py",
    output:
        [f"{OUT}/tspeed_{m}_{t}.txt" for m in TIMED_METHODS for t in TIMING_TAGS],
        [f"{OUT}/tspeedup_{n}_{ref}_{t}.txt" for n in TIMED_NETWORKS for ref in study.SPEEDUP_REFERENCES
         for t in TIMING_TAGS],
        [f"{OUT}/train_step_{k}_{n}.txt" for n in TIMED_NETWORKS for k in ("rate", "pct")
         if not study.trained_once(n)],  # a network trained once has no per-level training step
        f"{OUT}/matmul_gflops.txt",
        f"{OUT}/timing_repeats.txt",
        f"{OUT}/speed_hardware.txt",
    shell:
        "{PY} {input.script}"


COMPUTE += [f"{S}/timing.json"]


# ----------------------------------------------------------------- ablation study
rule summary_ablation:
    """Ablation ladder and removals (reduced epochs, shearbridge.config.ablation.ablation_epochs) next to the full-budget networks."""
    input:
        expand(f"{D}/results/compare/{{method}}/noise{{tag}}.json", method=ABLATIONS + study.names("evaluate"),
               tag=ABLATION_TAGS),
        expand(f"{D}/runs/{{method}}/noise{{tag}}/metrics.json", method=ABLATIONS + study.names("evaluate"),
               tag=ABLATION_TAGS),
    output:
        f"{S}/ablation.json",
    benchmark:
        f"{D}/benchmarks/summary-ablation.tsv"
    params:
        profile=PROFILE,
    shell:
        "{PY} -m shearbridge summarize ablation --profile {params.profile}"


rule ablation_numbers:
    input:
        f"{S}/ablation.json",
        script="src/scripts/num_ablation.py",
    output:
        [f"{OUT}/ablation_{what}_{t}.txt" for what in ("gain", "best_step", "best_factor") for t in ABLATION_TAGS],
        f"{OUT}/ablation_epochs.txt",
        f"{OUT}/ablation_fraction.txt",
        f"{OUT}/ablation_objects.txt",
    shell:
        "{PY} {input.script}"


COMPUTE += [f"{S}/ablation.json"]


rule activation_numbers:
    """Largest JAX-vs-NumPy difference of the activation functions."""
    input:
        "src/shearbridge/models/activations.py",
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
             "n_train", "n_val_pct", "n_test", "n_epochs", "arch_kernel", "arch_filters", "arch_pool",
             "arch_pool1_size", "arch_pool2_size", "arch_flatten", "arch_dense", "arch_n_params",
             "hp_lr", "hp_wd", "hp_batch", "full_epochs", "full_n_train", "layer_table"] + [f"noise_{t}" for t in TAGS]


rule constants:
    """The study's fixed settings, from shearbridge.config."""
    input:
        "src/shearbridge/config/settings.py",
        "src/shearbridge/config/experiments.py",
        "src/shearbridge/models/enhanced.py",
        script="src/scripts/num_constants.py",
    params:
        profile=PROFILE,
    output:
        [f"{OUT}/{name}.txt" for name in CONSTANTS],
    shell:
        "{PY} {input.script}"


# ------------------------------------------- robustness (RQ2) and bias against S/N (RQ5)
from shearbridge.steps.robustness import ROBUST_DATASETS

BIAS_GRID_METHODS = study.names("bias_grid")
ROBUST_METHODS = study.names("robustness")
ROBUST_TAGS = STAGS["robustness"]


rule crlb_fd:
    """Finite-difference GalSim Cramer-Rao bound of the first galaxies of one robustness set."""
    input:
        f"{D}/datasets/{{name}}/manifest.json",
    output:
        f"{D}/crlb/{{name}}_fd.npz",
    benchmark:
        f"{D}/benchmarks/crlb-fd-{{name}}.tsv"
    params:
        profile=PROFILE,
    resources:
        mem_mb=mem_mb(2),
        runtime=30,
    shell:
        "{PY} -m shearbridge crlb --dataset {wildcards.name} --profile {params.profile}"


rule robustness:
    """RMSE/CRLB of one method on every robustness set at one noise level (one process: the
    method compiles once for all sets)."""
    input:
        expand(f"{D}/datasets/{{name}}/manifest.json", name=ROBUST_DATASETS),
        expand(f"{D}/crlb/{{name}}_fd.npz", name=ROBUST_DATASETS),
        network_inputs,
    output:
        expand(f"{D}/results/robustness/{{{{method}}}}/{{name}}_noise{{{{tag}}}}.json", name=ROBUST_DATASETS),
    benchmark:
        f"{D}/benchmarks/robustness-{{method}}-{{tag}}.tsv"
    params:
        profile=PROFILE,
        sigma=lambda w: NOISE[w.tag],
        datasets=" ".join(ROBUST_DATASETS),
    threads: 1
    resources:
        mem_mb=mem_mb(2),
        runtime=30,
    shell:
        "{PY} -m shearbridge robustness --method {wildcards.method} --dataset {params.datasets}"
        " --noise {params.sigma} --profile {params.profile}"


rule summary_robustness:
    input:
        expand(f"{D}/results/robustness/{{method}}/{{name}}_noise{{tag}}.json", method=ROBUST_METHODS,
               name=ROBUST_DATASETS, tag=ROBUST_TAGS),
    output:
        f"{S}/robustness.json",
    params:
        profile=PROFILE,
    shell:
        "{PY} -m shearbridge summarize robustness --profile {params.profile}"


rule summary_bias:
    """m, c at every noise level of every method of the bias_grid study."""
    input:
        [p.format(kind=k) for k in BIAS_SETS
         for p in cell_paths(f"{D}/results/{{{{kind}}}}/{{method}}/noise{{tag}}.json", "bias_grid")],
        expand(f"{D}/results/bias_mcal/{{method}}/noise{{tag}}.json", method=study.names("metacal"),
               tag=STAGS["metacal"]),
    output:
        f"{S}/bias.json",
    params:
        profile=PROFILE,
    shell:
        "{PY} -m shearbridge summarize bias --profile {params.profile}"


rule summary_population:
    input:
        f"{D}/results/population.json",
    output:
        f"{S}/population.json",
    params:
        profile=PROFILE,
    shell:
        "{PY} -m shearbridge summarize population --profile {params.profile}"


def _population_numbers():
    """The variables num_population.py writes (its docstring), from the plan and the registry."""
    from shearbridge.config.population import population_plan
    from shearbridge.summaries.population import GROUPS, cell_methods, shear_methods

    plan = population_plan(P)
    cell_tags = [noise_tag(x) for x in plan.cell_noise]
    shear_tags = [noise_tag(x) for x in plan.shear_noise]
    names = ["pop_table", "pop_bias_table", "pop_target_met", "pop_pull_met", "pop_min_snr_target", "pop_train_min",
             "pop_n_seeds", "pop_noise_levels", "pop_shear_low", "pop_shear_high", "pop_held_galaxy", "pop_held_psf",
             "pop_network", "pop_learn_steps", "pop_learn_val"]
    names += [f"pop_{k}" for k in ("n_cell", "n_shear", "n_train", "steps", "batch_size")]
    names += [f"pop_snr_{t}" for t in cell_tags] + [f"pop_gain_nongauss_{t}" for t in cell_tags]
    names += [f"pop_{m}_{g}_{t}" for m in cell_methods() for g in GROUPS for t in cell_tags]
    names += [f"pop_pull_{g}_{t}" for g in GROUPS for t in cell_tags]
    names += [f"pop_abl_{a}_{t}" for a in plan.ablation_names() for t in cell_tags]
    names += [f"pop_learn_{k}_{t}" for k in ("cells", "last") for t in cell_tags] if plan.budgets else []
    names += [f"pop_m_{m}_{g}_{t}" for m in shear_methods() for g in GROUPS for t in shear_tags]
    if plan.metacal_noise:
        names += [f"pop_mcal_{k}_{p}" for k in ("m", "R", "wild") for p in plan.population.psf_families]
    return [f"{OUT}/{n}.txt" for n in names]


rule population_numbers:
    input:
        f"{S}/population.json",
        script="src/scripts/num_population.py",
    output:
        _population_numbers(),
    shell:
        "{PY} {input.script}"


rule bias_numbers:
    input:
        f"{S}/bias.json",
        [f"{D}/diagnosis/anacal_tuning.json"] if "anacal" in BIAS_GRID_METHODS else [],
        script="src/scripts/num_bias.py",
    output:
        [f"{OUT}/bias_{m}_{k}_{t}.txt" for m, t in CELLS["bias_grid"]
         for k in ("m1", "m2", "c1", "c2", "mrel1", "mrel2", "alpha")],
        [f"{OUT}/sigmam_{m}_{t}.txt" for m, t in CELLS["bias_grid"]],
        [f"{OUT}/nneed_{m}_{t}.txt" for m, t in CELLS["bias_grid"]],
        [f"{OUT}/bias_ngal_{m}.txt" for m in BIAS_GRID_METHODS],
        [f"{OUT}/lsst_meet_{t}.txt" for t in TAGS],
        [f"{OUT}/lsst_fail_{t}.txt" for t in TAGS],
        [f"{OUT}/lsst_open_{t}.txt" for t in TAGS],
        [f"{OUT}/bias_{v}_{t}.txt" for v in ("snr", "snrmf") for t in TAGS],
        [f"{OUT}/{v}.txt" for v in ("snr_mf_over_shearnet", "shear_test_g", "bias_ideal_m", "bias_ideal_c",
                                     "sigmam_target_high", "sigmam_target_survey", "sigmam_high_snr",
                                     "bias_precision_table", "bias_table", "bias_noise_levels", "psf_test_g",
                                     "mcal_table", "mcal_step", "mcal_wild", "mcal_noise_levels")],
        [f"{OUT}/mcal_{m}_{k}_{t}.txt" for m in study.names("metacal") for k in ("m1", "m2", "R", "wild")
         for t in STAGS["metacal"]],
        [f"{OUT}/anacal_{v}.txt" for v in ("version", "sigma", "sigma_over_psf", "c0", "tune_n", "tune_tol")
         if "anacal" in BIAS_GRID_METHODS],
    shell:
        "{PY} {input.script}"


COMPUTE += [f"{S}/bias.json", f"{D}/results/population.json"]


# ------------------------------------------- the shear-noise yardstick: n_eff per method and S/N (issue 16, item 4)
rule yardstick:
    """One method on the comparison galaxies with a bound, in two independent noise realisations."""
    input:
        f"{D}/datasets/test/manifest.json",
        network_inputs,
    output:
        f"{D}/results/yardstick/{{method}}/noise{{tag}}.npz",
    benchmark:
        f"{D}/benchmarks/yardstick-{{method}}-{{tag}}.tsv"
    params:
        profile=PROFILE,
        sigma=lambda w: NOISE[w.tag],
    threads: 1
    resources:
        mem_mb=mem_mb(2),
        runtime=30,
    shell:
        "{PY} -m shearbridge yardstick --method {wildcards.method} --noise {params.sigma} --profile {params.profile}"


rule summary_yardstick:
    """sigma_meas / sigma_CRLB and n_eff lost of every bias_grid method at every level."""
    input:
        cell_paths(f"{D}/results/yardstick/{{method}}/noise{{tag}}.npz", "bias_grid"),
        cell_paths(f"{D}/results/bias/{{method}}/noise{{tag}}.json", "bias_grid"),
        f"{D}/crlb/test.npz",
    output:
        f"{S}/yardstick.json",
    params:
        profile=PROFILE,
    shell:
        "{PY} -m shearbridge summarize yardstick --profile {params.profile}"


rule yardstick_numbers:
    input:
        f"{S}/yardstick.json",
        script="src/scripts/num_yardstick.py",
    output:
        [f"{OUT}/neff_{m}_{t}.txt" for m, t in CELLS["bias_grid"]],
        [f"{OUT}/measratio_{m}_{t}.txt" for m, t in CELLS["bias_grid"]],
        [f"{OUT}/neffw_{m}_{t}.txt" for m, t in CELLS["bias_grid"] if study.get_method(m).uncertainty],
        [f"{OUT}/vantrees_gain_{t}.txt" for t in TAGS],
        f"{OUT}/sigma_e.txt",
    shell:
        "{PY} {input.script}"


COMPUTE += [f"{S}/yardstick.json"]


# ------------------------------------------- the low-noise floor and the weight fractions (issue 15, items 4, 6)
from shearbridge.steps.floor import BINNED_METHODS, VARIANT_KEYS

FLOOR_METHODS = [m for m in BINNED_METHODS if m in METHODS]
FLOOR_TAG = noise_tag(P.noise_grid[0])  # the profile's lowest noise level
FLOOR_KEYS = list(VARIANT_KEYS.values())  # reference first


rule floor:
    """Error/CRLB at the lowest noise level against galaxy size and out-of-stamp flux (four methods),
    the moments-only estimator's numerics (float64, 16 iterations, no pixel term), noise-free split."""
    input:
        f"{D}/datasets/test/manifest.json",
        f"{D}/datasets/train/manifest.json",
        f"{D}/crlb/test.npz",
        # the compare rule declares the .json; the .npz read here is written beside it
        [f"{D}/results/compare/{m}/noise{FLOOR_TAG}.json" for m in FLOOR_METHODS],
        "src/shearbridge/models/moments.py",
    output:
        f"{D}/diagnosis/floor.json",
    benchmark:
        f"{D}/benchmarks/floor.tsv"
    params:
        profile=PROFILE,
    threads: 1
    resources:
        mem_mb=mem_mb(2),
        runtime=30,
    shell:
        "{PY} -m shearbridge.steps.floor --profile {params.profile}"


rule tune_weight_fractions:
    """The adaptive-moment weight fractions chosen on the trainer's validation split, and whether
    models/moments.py's WEIGHT_FRACTIONS are that choice (num_floor.py refuses to build if not)."""
    input:
        f"{D}/datasets/train/manifest.json",
        "src/shearbridge/models/moments.py",
    output:
        f"{D}/diagnosis/weight_fractions.json",
    benchmark:
        f"{D}/benchmarks/tune.tsv"
    params:
        profile=PROFILE,
    threads: 1
    resources:
        mem_mb=mem_mb(2),
        runtime=30,
    shell:
        "{PY} -m shearbridge.steps.tune --profile {params.profile}"


rule tune_anacal:
    """AnaCal's kernel scale and weight constant chosen on training galaxies at the survey noise, and
    whether the estimator's defaults are that choice (num_bias.py refuses to build the paper if not)."""
    input:
        f"{D}/datasets/train/manifest.json",
        "src/shearbridge/estimators/anacal.py",
        "src/shearbridge/steps/tune_anacal.py",
    output:
        f"{D}/diagnosis/anacal_tuning.json",
    benchmark:
        f"{D}/benchmarks/tune-anacal.tsv"
    params:
        profile=PROFILE,
    threads: 1
    resources:
        mem_mb=mem_mb(2),
        runtime=30,
    shell:
        "{PY} -m shearbridge.steps.tune_anacal --profile {params.profile}"


rule summary_floor:
    input:
        f"{D}/diagnosis/floor.json",
        f"{D}/diagnosis/weight_fractions.json",
    output:
        f"{S}/floor.json",
    params:
        profile=PROFILE,
    shell:
        "{PY} -m shearbridge.steps.floor --summarize --profile {params.profile}"


rule floor_numbers:
    input:
        f"{S}/floor.json",
        "src/shearbridge/models/moments.py",
        script="src/scripts/num_floor.py",
    output:
        [f"{OUT}/floor_{k}_{s}.txt" for k in FLOOR_KEYS for s in ("all", "no5")],
        [f"{OUT}/floor_delta_{k}_{s}.txt" for k in FLOOR_KEYS[1:] for s in ("all", "no5")],
        [f"{OUT}/floor_median_{k}.txt" for k in FLOOR_KEYS],
        [f"{OUT}/floor_{v}_{m}.txt" for v in ("smallbin", "lowflux") for m in FLOOR_METHODS],
        [f"{OUT}/floor_{v}.txt" for v in ("clean_ratio", "clean_ratio_no5", "noisepart_ratio", "noise", "n",
                                          "nfit", "smallbin_hi", "lowflux_n")],
        [f"{OUT}/tune_{v}.txt" for v in ("choice", "current", "table", "nval")],
    shell:
        "{PY} {input.script}"


COMPUTE += [f"{S}/floor.json"]
