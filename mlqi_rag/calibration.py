"""The scan's decision model: fitted on labelled question–interview pairs, never hand-tuned.

Two logistic regressions over the scan's per-interview features: P(the interview *discusses*
the question) and P(it at least *touches on* it). Labels come from the question sets: an
interview in ``gold_interviews`` discusses, one in ``gold_touching`` touches, every other
searched interview is silent. Regularisation is chosen by cross-validation grouped by question,
the two decision thresholds by the mean per-question F1 of the predicted interview set on the dev
split; the held-out split is only ever reported. The parameters ship as ``scan_model.json``
beside this module and their digest is part of the settings fingerprint, so every index and
answer names the model that made its decisions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = (
    "span_max",
    "span_top3",
    "span_gap",
    "chunk_max",
    "chunk_gap",
    "bm25_rel",
    "bm25_log",
    "cov_chunk",
    "cov_interview",
    "key_terms",
    "key_count",
    "strong_spans",
    "code",
    "other_language",
    "absent_share",
    "asks_which",
    "rank_frac",
    "which_key",
    "has_name",
    "name_hit",
    "name_near",
    "phrase_apart",
)


# The question-level model: is the question about something no interview discusses? Its inputs
# summarise the per-interview model's output and the question's lexical standing in the corpus.
ABSTAIN_FEATURES = (
    "p_max",
    "p_gap",
    "phrase_apart",
    "absent_share",
    "has_name",
    "name_hit_max",
    "span_max",
    "bm25_max",
)
T_ABSTAIN = 0.5  # a balanced-class probability: the two errors weigh the same


def question_features(x: np.ndarray, p_d: np.ndarray) -> np.ndarray:
    """``ABSTAIN_FEATURES`` of one question from its interviews' ``FEATURES`` rows and
    P(discusses)."""
    if not len(p_d):
        return np.zeros(len(ABSTAIN_FEATURES))
    f = {name: i for i, name in enumerate(FEATURES)}
    top = np.sort(p_d)[::-1]
    return np.array(
        [
            top[0],
            top[0] - (top[1] if len(top) > 1 else 0.0),
            x[0, f["phrase_apart"]],
            x[0, f["absent_share"]],
            x[0, f["has_name"]],
            x[:, f["name_hit"]].max(),
            x[:, f["span_max"]].max(),
            x[:, f["bm25_log"]].max(),
        ]
    )


def bundled_model_path() -> Path:
    return Path(str(resources.files("mlqi_rag") / "scan_model.json"))


@dataclass(frozen=True)
class ScanModel:
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef_discusses: np.ndarray
    intercept_discusses: float
    coef_touches: np.ndarray
    intercept_touches: float
    t_discusses: float
    t_touches: float
    t_which: float = -1.0  # "Which interviewees…" questions want every interview: own bar
    report: dict[str, Any] = field(default_factory=dict)
    # question level: P(no interview discusses it); the default never abstains
    abstain_mean: np.ndarray = field(default_factory=lambda: np.zeros(len(ABSTAIN_FEATURES)))
    abstain_scale: np.ndarray = field(default_factory=lambda: np.ones(len(ABSTAIN_FEATURES)))
    abstain_coef: np.ndarray = field(default_factory=lambda: np.zeros(len(ABSTAIN_FEATURES)))
    abstain_intercept: float = -10.0

    def threshold(self, asks_which: bool) -> float:
        return self.t_which if asks_which and self.t_which >= 0 else self.t_discusses

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = (x - self.mean) / self.scale
        p_d = 1.0 / (1.0 + np.exp(-(z @ self.coef_discusses + self.intercept_discusses)))
        p_t = 1.0 / (1.0 + np.exp(-(z @ self.coef_touches + self.intercept_touches)))
        return p_d, np.maximum(p_t, p_d)

    def p_out_of_scope(self, q: np.ndarray) -> float:
        z = (q - self.abstain_mean) / self.abstain_scale
        return float(1.0 / (1.0 + np.exp(-(z @ self.abstain_coef + self.abstain_intercept))))

    def params(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "mean": self.mean.round(8).tolist(),
            "scale": self.scale.round(8).tolist(),
            "discusses": {
                "coef": self.coef_discusses.round(8).tolist(),
                "intercept": round(self.intercept_discusses, 8),
            },
            "touches": {
                "coef": self.coef_touches.round(8).tolist(),
                "intercept": round(self.intercept_touches, 8),
            },
            "t_discusses": round(self.t_discusses, 6),
            "t_touches": round(self.t_touches, 6),
            "t_which": round(self.t_which, 6),
            "abstain": {
                "features": list(ABSTAIN_FEATURES),
                "mean": self.abstain_mean.round(8).tolist(),
                "scale": self.abstain_scale.round(8).tolist(),
                "coef": self.abstain_coef.round(8).tolist(),
                "intercept": round(self.abstain_intercept, 8),
            },
        }

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.params(), sort_keys=True).encode()).hexdigest()[:12]

    def save(self, path: Path) -> None:
        path.write_text(
            json.dumps({**self.params(), "report": self.report}, indent=1) + "\n",
            encoding="utf-8",
        )

    @classmethod
    def load(cls, path: Path) -> ScanModel:
        from .errors import ConfigError

        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            if tuple(d["features"]) != FEATURES:
                raise ValueError(f"features {d['features']} are not this version's {FEATURES}")
            if tuple(d["abstain"]["features"]) != ABSTAIN_FEATURES:
                raise ValueError("question-level features are not this version's")
            return cls(
                features=tuple(d["features"]),
                mean=np.array(d["mean"]),
                scale=np.array(d["scale"]),
                coef_discusses=np.array(d["discusses"]["coef"]),
                intercept_discusses=float(d["discusses"]["intercept"]),
                coef_touches=np.array(d["touches"]["coef"]),
                intercept_touches=float(d["touches"]["intercept"]),
                t_discusses=float(d["t_discusses"]),
                t_touches=float(d["t_touches"]),
                t_which=float(d.get("t_which", -1.0)),
                report=d.get("report", {}),
                abstain_mean=np.array(d["abstain"]["mean"]),
                abstain_scale=np.array(d["abstain"]["scale"]),
                abstain_coef=np.array(d["abstain"]["coef"]),
                abstain_intercept=float(d["abstain"]["intercept"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path}: not a usable scan model ({exc}); run `mlqi-rag calibrate`"
            ) from exc

    @classmethod
    def neutral(cls) -> ScanModel:
        """Features only (every interview 'silent'): what calibration scans with."""
        n = len(FEATURES)
        return cls(FEATURES, np.zeros(n), np.ones(n), np.zeros(n), -10.0, np.zeros(n), -10.0, 1, 1)


# ---- fitting -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """One labelled question–interview pair with its scan features."""

    question_id: str
    corpus: str
    split: str
    interview_id: str
    label: int  # 2 discusses, 1 touches, 0 silent
    features: tuple[float, ...]
    answerable: bool


def _sets(pairs: Sequence[Pair], p: np.ndarray, t: float, level: int) -> dict[tuple, tuple]:
    """Per question: (predicted interviews, gold interviews) at this threshold and label level."""
    out: dict[tuple, tuple[set[str], set[str]]] = {}
    for pair, prob in zip(pairs, p, strict=True):
        pred, gold = out.setdefault((pair.corpus, pair.question_id), (set(), set()))
        if prob >= t:
            pred.add(pair.interview_id)
        if pair.label >= level:
            gold.add(pair.interview_id)
    return out


def set_f1(pred: set[str], gold: set[str]) -> float:
    if not pred and not gold:
        return 1.0
    if not pred or not gold:
        return 0.0
    tp = len(pred & gold)
    return 2 * tp / (len(pred) + len(gold))


def mean_f1(pairs: Sequence[Pair], p: np.ndarray, t: float, level: int) -> float:
    return float(np.mean([set_f1(a, b) for a, b in _sets(pairs, p, t, level).values()]))


def best_threshold(pairs: Sequence[Pair], p: np.ndarray, level: int) -> float:
    grid = np.unique(np.round(p, 3))
    grid = grid[(grid > 0.01) & (grid < 0.99)]
    if not len(grid):
        return 0.5
    scores = [mean_f1(pairs, p, float(t), level) for t in grid]
    return float(grid[int(np.argmax(scores))])


def _fit_lr(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> tuple[Any, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score

    best_c, best = 1.0, -np.inf
    folds = min(5, len(set(groups.tolist())))
    for c in (0.03, 0.1, 0.3, 1.0, 3.0):
        lr = LogisticRegression(C=c, max_iter=2000)
        score = cross_val_score(
            lr, x, y, groups=groups, cv=GroupKFold(folds), scoring="neg_log_loss"
        ).mean()
        if score > best:
            best_c, best = c, score
    return LogisticRegression(C=best_c, max_iter=2000).fit(x, y), best_c


def fit(pairs: Sequence[Pair]) -> ScanModel:
    """Fit on the dev pairs (the held-out ones are not looked at here)."""
    dev = [p for p in pairs if p.split != "heldout"]
    x = np.array([p.features for p in dev], dtype=np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    groups = np.array([hash((p.corpus, p.question_id)) for p in dev])
    lr_d, c_d = _fit_lr(z, np.array([p.label >= 2 for p in dev]), groups)
    lr_t, c_t = _fit_lr(z, np.array([p.label >= 1 for p in dev]), groups)
    model = ScanModel(
        FEATURES,
        mean,
        scale,
        lr_d.coef_[0],
        float(lr_d.intercept_[0]),
        lr_t.coef_[0],
        float(lr_t.intercept_[0]),
        0.5,
        0.5,
    )
    p_d, p_t = model.predict(x)
    t_d = best_threshold(dev, p_d, 2)
    t_t = best_threshold(dev, p_t, 1)
    which = [i for i, p in enumerate(dev) if p.features[FEATURES.index("asks_which")] > 0]
    t_w = best_threshold([dev[i] for i in which], p_d[which], 2) if which else -1.0
    ab = _fit_abstain(dev, z, c_d, groups)
    return ScanModel(
        FEATURES,
        mean,
        scale,
        model.coef_discusses,
        model.intercept_discusses,
        model.coef_touches,
        model.intercept_touches,
        t_d,
        min(t_t, t_d),  # p_touches >= p_discusses, so a higher bar would never apply
        t_w,
        report={
            "C_discusses": c_d,
            "C_touches": c_t,
            "C_abstain": ab["C"],
            "dev_pairs": len(dev),
            "dev_questions": ab["questions"],
        },
        abstain_mean=ab["mean"],
        abstain_scale=ab["scale"],
        abstain_coef=ab["coef"],
        abstain_intercept=ab["intercept"],
    )


def _by_question(pairs: Sequence[Pair]) -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = {}
    for i, p in enumerate(pairs):
        out.setdefault((p.corpus, p.question_id), []).append(i)
    return out


def _fit_abstain(
    dev: Sequence[Pair], z: np.ndarray, c: float, groups: np.ndarray
) -> dict[str, Any]:
    """The question-level model, fitted on what the interview model says of questions it was
    not fitted on (out-of-fold, folds by question), so it learns how far to trust it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_score

    y = np.array([p.label >= 2 for p in dev])
    oof = np.zeros(len(dev))
    for tr, te in GroupKFold(5).split(z, groups=groups):
        lr = LogisticRegression(C=c, max_iter=2000).fit(z[tr], y[tr])
        oof[te] = lr.predict_proba(z[te])[:, 1]
    x = np.array([p.features for p in dev], dtype=np.float64)
    rows = list(_by_question(dev).values())
    q = np.array([question_features(x[r], oof[r]) for r in rows])
    out_of_scope = np.array([not any(dev[i].label >= 2 for i in r) for r in rows])
    mean, scale = q.mean(axis=0), q.std(axis=0)
    scale[scale == 0] = 1.0
    qz = (q - mean) / scale
    folds = StratifiedKFold(min(5, int(out_of_scope.sum())), shuffle=True, random_state=0)
    best_c, best = 1.0, -np.inf
    for c_a in (0.1, 0.3, 1.0, 3.0, 10.0):
        lr = LogisticRegression(C=c_a, max_iter=2000, class_weight="balanced")
        score = cross_val_score(lr, qz, out_of_scope, cv=folds, scoring="neg_log_loss").mean()
        if score > best:
            best_c, best = c_a, score
    lr = LogisticRegression(C=best_c, max_iter=2000, class_weight="balanced").fit(qz, out_of_scope)
    return {
        "C": best_c,
        "questions": len(rows),
        "mean": mean,
        "scale": scale,
        "coef": lr.coef_[0],
        "intercept": float(lr.intercept_[0]),
    }


def pairs_for(
    pipeline: Any, questions: Sequence[Any], corpus: str
) -> tuple[list[Pair], dict[tuple[str, str], bool]]:
    """Scan features of every searched interview for every question, with its label; and
    which questions name something no transcript mentions (answered by abstaining)."""
    from .retrieval import Filters

    pairs: list[Pair] = []
    absent: dict[tuple[str, str], bool] = {}
    for q in questions:
        result = pipeline.retriever.retrieve(q.question, filters=Filters())
        assert result.query_vector is not None
        scan = pipeline.scanner.scan(result, result.query_vector)
        absent[(corpus, q.id)] = bool(scan.absent_names)
        gold, touching = set(q.gold_interviews), set(q.gold_touching)
        for e in scan.interviews:
            label = 2 if e.interview_id in gold else 1 if e.interview_id in touching else 0
            pairs.append(
                Pair(
                    q.id,
                    corpus,
                    q.split,
                    e.interview_id,
                    label,
                    tuple(e.features[f] for f in FEATURES),
                    q.answerable,
                )
            )
    return pairs, absent


# ---- reporting ---------------------------------------------------------------------------------


def decisions(
    pairs: Sequence[Pair], model: ScanModel, absent: dict[tuple[str, str], bool] | None = None
) -> dict[str, float]:
    """Per-question figures of a model's interview sets (discusses), as the answer would cite."""
    x = np.array([p.features for p in pairs], dtype=np.float64)
    p_d, _ = model.predict(x)
    by_q: dict[tuple[str, str], list[tuple[Pair, float]]] = {}
    for pair, prob in zip(pairs, p_d, strict=True):
        by_q.setdefault((pair.corpus, pair.question_id), []).append((pair, float(prob)))
    prec, rec, f1, abst, false_abst = [], [], [], [], []
    for key, rows in by_q.items():
        gold = {p.interview_id for p, _ in rows if p.label >= 2}
        which = rows[0][0].features[FEATURES.index("asks_which")] > 0
        pred = {p.interview_id for p, pr in rows if pr >= model.threshold(which)}
        qx = np.array([p.features for p, _ in rows], dtype=np.float64)
        p_out = model.p_out_of_scope(question_features(qx, np.array([pr for _, pr in rows])))
        if (absent and absent.get(key)) or p_out >= T_ABSTAIN:
            pred = set()
        answerable = rows[0][0].answerable and bool(gold)
        if not answerable:
            abst.append(float(not pred))
            continue
        false_abst.append(float(not pred))
        f1.append(set_f1(pred, gold))
        if pred:
            prec.append(len(pred & gold) / len(pred))
            rec.append(len(pred & gold) / len(gold))
    return {
        "questions": len(by_q),
        "precision": float(np.mean(prec)) if prec else float("nan"),
        "recall": float(np.mean(rec)) if rec else float("nan"),
        "set_f1": float(np.mean(f1)) if f1 else float("nan"),
        "abstention": float(np.mean(abst)) if abst else float("nan"),
        "false_abstention": float(np.mean(false_abst)) if false_abst else float("nan"),
    }


def single_feature_baseline(pairs: Sequence[Pair], feature: str = "span_max") -> ScanModel:
    """One feature, one threshold fitted on dev: what the fitted model is compared against."""
    i = FEATURES.index(feature)
    n = len(FEATURES)
    coef = np.zeros(n)
    coef[i] = 1.0
    dev = [p for p in pairs if p.split != "heldout"]
    x = np.array([p.features for p in dev], dtype=np.float64)
    base = ScanModel(FEATURES, np.zeros(n), np.ones(n), coef, 0.0, coef, 0.0, 0.5, 0.5)
    p_d, _ = base.predict(x)
    t = best_threshold(dev, p_d, 2)
    return ScanModel(FEATURES, np.zeros(n), np.ones(n), coef, 0.0, coef, 0.0, t, t)
