"""Numbers: the timing study (galaxies/s per method, speed-ups, training-step rate, hardware).

Reads ``src/data/summary/timing.json`` (``python -m shearbridge timing``; all
methods timed side by side in one process). Writes ``tspeed_<method>_<tag>``
(galaxies/s, median over rounds with the error of the median),
``tspeedup_<net>_<ref>_<tag>`` (per-round paired ratios), ``train_step_rate_<net>``
(samples/s), ``train_step_pct_<net>`` (per cent of the matmul rate),
``matmul_gflops``, ``timing_repeats`` and ``speed_hardware``, the machine the
numbers belong to (a GPU is named as such; classical methods always ran on the CPU).
Run on its own: ``python src/scripts/num_speed.py``.
"""

from shearbridge import study
from shearbridge.config import Profile
from shearbridge.paper.outputs import fmt_pm, write_variable
from shearbridge.summaries import load_summary_json


def tex_escape(text: str) -> str:
    for a, b in (("\\", "/"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&"), ("#", "\\#")):
        text = text.replace(a, b)
    return text


def hardware_label(t: dict) -> str:
    """Where the speeds were measured, e.g. "one core of an AMD EPYC 7B13 (no GPU)"."""
    hw = t["hardware"]
    cores = hw.get("cores_used", hw["cores"])
    cpu = f"{'one core' if cores == 1 else f'{cores} cores'} of {tex_escape(hw['cpu'])}"
    if hw.get("backend", "cpu") == "cpu":
        return f"{cpu} (no GPU)"
    gpu = tex_escape(hw["devices"][0])
    return f"a {gpu} GPU for the networks and the JAX fit, and {cpu} for HSM"


def outputs(profile: Profile) -> list[str]:
    """The variables :func:`main` writes: the registry's timing study at its levels (a network
    trained once, for every level, has no per-level training step)."""
    networks = study.names("timing", kind="network")
    timed = networks + study.names("timing", kind="classical")
    tags = study.study_tags(profile, "timing")
    names = [f"tspeed_{m}_{t}" for m in timed for t in tags]
    names += [
        f"tspeedup_{n}_{ref}_{t}"
        for n in networks
        for ref in study.SPEEDUP_REFERENCES
        for t in tags
    ]
    names += [
        f"train_step_{k}_{n}"
        for n in networks
        for k in ("rate", "pct")
        if not study.trained_once(n)
    ]
    return names + ["matmul_gflops", "timing_repeats", "speed_hardware"]


def main() -> None:
    t = load_summary_json("timing")
    for tag, per in t["speed"].items():
        for m, r in per.items():
            write_variable(f"tspeed_{m}_{tag}", fmt_pm(r["median"], r["err"]))
        for pair, r in t["speedup"][tag].items():
            net, ref = pair.split("/")
            write_variable(f"tspeedup_{net}_{ref}_{tag}", fmt_pm(r["median"], r["err"]))
    for net, r in t["train_step"].items():
        write_variable(f"train_step_rate_{net}", fmt_pm(r["median"], r["err"]))
        write_variable(
            f"train_step_pct_{net}", fmt_pm(r["pct_of_matmul"]["median"], r["pct_of_matmul"]["err"])
        )
    mm = t["matmul_gflops"]
    write_variable("matmul_gflops", fmt_pm(mm["median"], mm["err"]))
    write_variable("timing_repeats", f"${t['repeats']}$")
    write_variable("speed_hardware", hardware_label(t))


if __name__ == "__main__":
    from shearbridge.paper.outputs import run_numbers

    run_numbers(main, outputs)
