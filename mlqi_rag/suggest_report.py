"""The Markdown report of ``mlqi-rag suggest --evaluate`` (``eval/results/suggest.md``): the
held-out figures of ``suggest_eval`` laid out beside the baseline, with the threshold rule and
the command that reproduces them."""

from __future__ import annotations

import math
from typing import Any

from .suggest_eval import BASELINE, BASELINE_MIN_CONFIDENCE


def _f(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _prf_cells(m: dict[str, float]) -> str:
    return f"{_f(m['precision'])} / {_f(m['recall'])} / {_f(m['f1'])}"


def markdown(ev: dict[str, Any], command: str = "", top: int = 15) -> str:
    """The evaluation as a Markdown report."""
    main = ev["learner"]
    lines = [
        "# Suggested codes: leave-one-interview-out evaluation",
        "",
        f"Interviews {', '.join(ev['interviews'])}: {ev['passages']} participant passages, "
        f"{ev['coded_passages']} of them coded, {ev['codes']} codes. Each interview is predicted "
        "by a model fitted on the others. **Held out** = each interview at the threshold chosen "
        "on its training interviews only (an inner LOIO); threshold rule: "
        f"{ev['threshold_rule']}. **Fixed** = one threshold for every interview "
        f"(`{main}`: the default {_f(ev['default_min_confidence'])}, chosen by the same rule on "
        f"all five interviews' LOIO confidences, so not held out; `{BASELINE}`: its old default "
        f"{BASELINE_MIN_CONFIDENCE}). Truth: a passage has a code when any researcher applied it. "
        "AP: average precision of the LOIO confidences over every (passage, code) pair.",
        "",
        "## Learners",
        "",
        "| learner | what | thresholds (held out) | n | passage micro P / R / F1 | passage "
        "macro P / R / F1 | interview micro P / R / F1 | interview macro P / R / F1 | AP |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in ev["learners"].items():
        for label, at in (("held out", r["nested"]), ("fixed", r["at_min_confidence"])):
            th = (
                ", ".join(f"{k}: {_f(v)}" for k, v in r["thresholds"].items())
                if label == "held out"
                else _f(r["min_confidence"])
            )
            lines.append(
                f"| {name} ({label}) | {r['description'] if label == 'held out' else ''} | {th} "
                f"| {at['suggested']} | {_prf_cells(at['passage']['micro'])} "
                f"| {_prf_cells(at['passage']['macro'])} | {_prf_cells(at['interview']['micro'])} "
                f"| {_prf_cells(at['interview']['macro'])} | {_f(r['average_precision'])} |"
            )
    lines += [
        "",
        "## Cohen's kappa against each human coder (held out)",
        "",
        "Every (passage, code) or (interview, code) decision over the codebook of the coded "
        "interviews; *human–human*: the other coder(s) of the same interviews against this coder; "
        "*ceiling*: a perfect model of the codes each fold could learn.",
        "",
    ]
    names = list(ev["learners"])
    head = "| coder | interviews | level | human–human | " + " | ".join(names) + " | ceiling |"
    lines += [head, "|" + "---|" * (5 + len(names))]
    rows = {n: {k["coder"]: k for k in ev["learners"][n]["nested"]["kappa"]} for n in names}
    ceiling = {k["coder"]: k for k in ev["learners"][main]["ceiling_kappa"]}
    for coder, ref in rows[main].items():
        for level in ("passage", "interview"):
            cells = " | ".join(_f(rows[n][coder][f"suggested_{level}"]) for n in names)
            lines.append(
                f"| {coder} | {', '.join(ref['interviews'])} | {level} "
                f"| {_f(ref[f'other_{level}'])} | {cells} "
                f"| {_f(ceiling[coder][f'suggested_{level}'])} |"
            )
    r = ev["learners"][main]
    codes = sorted(r["nested"]["passage"]["codes"].items(), key=lambda kv: -kv[1]["support"])
    iv_codes = r["nested"]["interview"]["codes"]
    lines += [
        "",
        f"## Codes with the most passages (`{main}`, held out)",
        "",
        "| code | passages | suggested | P | R | F1 | interviews | suggested in | interview P | "
        "interview R |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for code, m in codes[:top]:
        iv = iv_codes[code]
        lines.append(
            f"| {code} | {m['support']} | {m['suggested']} | {_f(m['precision'])} "
            f"| {_f(m['recall'])} | {_f(m['f1'])} | {iv['support']} | {iv['suggested']} "
            f"| {_f(iv['precision'])} | {_f(iv['recall'])} |"
        )
    lines += [
        "",
        f"{len(r['rare'])} of {ev['codes']} codes were learned by no fold (no fold's training "
        f"interviews hold {ev['min_examples']} passages with the code"
        + (f" in {ev['min_interviews']} interviews" if ev["min_interviews"] > 1 else "")
        + "; in brackets: its passages in all of them): "
        + ", ".join(f"{c} ({n})" for c, n in r["rare"].items()),
        "",
        "Time per learner (LOIO with nested thresholds): "
        + ", ".join(f"{n} {ev['learners'][n]['seconds']} s" for n in names),
    ]
    if command:
        lines += ["", "Command:", "", f"    {command}"]
    return "\n".join(lines) + "\n"
