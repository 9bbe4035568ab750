"""Grouping an answer's quotes into practices, and fitting how, on the researchers' own codes.

When the quotes carry no codes (the 36 study transcripts), ``evidence.group_quotes`` clusters
them. What to cluster (the quote's own vector, its turn's, or a mix), how (the linkage) and
where to cut (the cosine distance) is fitted here, on coded interviews: the codes researchers
gave sibling practices ("Data-collection-manual", "-system", "-web-scrape") are the groups a
clustering of those passages should find.

- A *family* is the codes that share a prefix of one or two dash-separated parts ("Data",
  "Data-collection"), when at least two of them code two or more paragraphs.
- A sample is up to 12 participant paragraphs, each coded with exactly one code of the family
  and from different turns (quotes of one turn share its vector), quoted by one random span
  each; 25 samples per family, seeded.
- The score is the adjusted Rand index of the clusters against the codes: 0 is chance, 1 is the
  codes exactly.
- Each family is scored with the setting fitted on the families of *other* roots ("Data",
  "QM", "MLP"…; families of one root share paragraphs), so every figure is held out. The
  setting shipped (``SHIPPED``) is the one fitted on all families; ``mlqi-rag fit-grouping``
  refits it and prints both beside the setting used before (``BASELINE``).

Measured on the 12 Delve prints of interviews 2, 7, 12, 32 and 35 (10 families), the quote's
turn vector cut at 0.5 recovers the codes at ARI 0.34 held out, against 0.03 for the sentence
vectors cut at 0.55 that grouped quotes before: a sentence of disfluent speech says little of
the practice it belongs to; its turn, with the question it answers, says it.
"""

from __future__ import annotations

import bisect
import random
import re
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import numpy as np

from .index import Index

Linkage = Literal["average", "complete"]


@dataclass(frozen=True)
class Setting:
    """How quotes are clustered: ``turn_weight`` mixes the quote's turn vector into its own
    (0 = the sentence alone, 1 = the turn alone)."""

    turn_weight: float
    linkage: Linkage
    distance: float

    def to_dict(self) -> dict[str, Any]:
        return {"turn_weight": self.turn_weight, "linkage": self.linkage, "distance": self.distance}


SHIPPED = Setting(turn_weight=1.0, linkage="average", distance=0.5)
BASELINE = Setting(turn_weight=0.0, linkage="average", distance=0.55)  # before it was fitted
GRID = tuple(
    Setting(w, link, round(float(d), 2))
    for w in (0.0, 0.5, 0.75, 1.0)
    for link in ("average", "complete")
    for d in np.arange(0.35, 0.851, 0.05)
)
SAMPLES = 25
SAMPLE_SIZE = 12


def quote_vectors(index: Index, rows: Sequence[int], turn_weight: float) -> np.ndarray:
    """Unit vectors of span-table ``rows``: each span's own, mixed with its turn's. Passages are
    compared with passages here, so the model's own vectors, not the question adapter's."""
    spans = index.raw_spans
    own = spans.vectors[list(rows)].astype(np.float64)
    turn = index.raw_vectors[spans.chunk[list(rows)]].astype(np.float64)
    mixed = (1.0 - turn_weight) * own + turn_weight * turn
    norms = np.linalg.norm(mixed, axis=1, keepdims=True)
    return mixed / np.where(norms > 0, norms, 1.0)


def cluster_quotes(index: Index, rows: Sequence[int], setting: Setting = SHIPPED) -> np.ndarray:
    """Cluster labels of span-table ``rows`` quoted together, as ``setting`` says."""
    return cluster(quote_vectors(index, rows, setting.turn_weight), setting)


def cluster(vectors: np.ndarray, setting: Setting) -> np.ndarray:
    """Cluster labels of unit ``vectors`` (one cluster when there are fewer than two)."""
    if len(vectors) < 2:
        return np.zeros(len(vectors), dtype=int)
    from sklearn.cluster import AgglomerativeClustering

    return np.asarray(
        AgglomerativeClustering(
            n_clusters=None,
            metric="cosine",
            linkage=setting.linkage,
            distance_threshold=setting.distance,
        ).fit_predict(vectors)
    )


# ---- fitting on coded interviews ------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """One coded paragraph: its code in the family, its turn, and the spans inside it."""

    code: str
    turn: tuple[str, int]
    rows: tuple[int, ...]


@dataclass(frozen=True)
class Family:
    root: str
    name: str
    units: tuple[Unit, ...]

    def codes(self) -> dict[str, int]:
        return dict(Counter(u.code for u in self.units))


def _normal(code: str) -> str:
    """One spelling per code: a coder's "Data-missing-values" is the other's "-value"."""
    code = re.sub(r"\s*\[.*?\]\s*$", "", code.strip().lower())
    return "-".join(re.sub(r"(?<=[a-z]{3})s$", "", part) for part in code.split("-"))


def _prefix(code: str, level: int) -> str | None:
    parts = code.split("-")
    return "-".join(parts[:level]) if len(parts) > level else None


def families(index: Index) -> list[Family]:
    """The code families of an index's coded participant paragraphs (see the module doc)."""
    spans = index.spans
    # Span rows inside each participant paragraph, by interview and paragraph start.
    paragraphs: dict[str, list[tuple[int, int, int, tuple[str, ...]]]] = {}
    for iv_id, iv in index.interviews.items():
        paragraphs[iv_id] = sorted(
            (p.start, p.end, t.index, tuple(dict.fromkeys(_normal(c) for c in p.codes)))
            for t in iv.turns
            if t.role == "participant"
            for p in t.paragraphs
            if p.codes
        )
    inside: dict[tuple[str, int], list[int]] = {}
    for row in range(len(spans)):
        iv_id = index.chunks[int(spans.chunk[row])].interview_id
        paras = paragraphs.get(iv_id, [])
        start, end = int(spans.start[row]), int(spans.end[row])
        i = bisect.bisect_right([p[0] for p in paras], start) - 1
        if i >= 0 and end <= paras[i][1]:
            inside.setdefault((iv_id, i), []).append(row)
    out: list[Family] = []
    for level in (1, 2):
        units: dict[str, list[Unit]] = {}
        for (iv_id, i), rows in sorted(inside.items()):
            _, _, turn, codes = paragraphs[iv_id][i]
            by_family: dict[str, list[str]] = {}
            for code in codes:
                if (name := _prefix(code, level)) is not None:
                    by_family.setdefault(name, []).append(code)
            for name, members in by_family.items():
                if len(members) == 1:
                    units.setdefault(name, []).append(Unit(members[0], (iv_id, turn), tuple(rows)))
        for name, us in sorted(units.items()):
            counts = Counter(u.code for u in us)
            kept = tuple(u for u in us if counts[u.code] >= 2)
            if len({u.code for u in kept}) >= 2:
                out.append(Family(name.split("-")[0], name, kept))
    return out


def _samples(family: Family, seed: int) -> tuple[list[int], list[str]]:
    rnd = random.Random(f"{family.name}:{seed}")
    one_per_turn: dict[tuple[str, int], Unit] = {}
    for u in rnd.sample(family.units, len(family.units)):
        one_per_turn.setdefault(u.turn, u)
    pool = list(one_per_turn.values())
    chosen = rnd.sample(pool, min(SAMPLE_SIZE, len(pool)))
    return [rnd.choice(u.rows) for u in chosen], [u.code for u in chosen]


def family_score(index: Index, family: Family, setting: Setting) -> tuple[float, int]:
    """Mean adjusted Rand index of ``setting``'s clusters against the codes, and the number of
    samples that could score it."""
    from sklearn.metrics import adjusted_rand_score

    scores = []
    for seed in range(SAMPLES):
        rows, codes = _samples(family, seed)
        # Two codes to tell apart, and two quotes of one code to put together: with every code
        # quoted once, splitting everything would score as well as the codes themselves.
        if len(set(codes)) < 2 or max(Counter(codes).values()) < 2:
            continue
        labels = cluster_quotes(index, rows, setting)
        scores.append(float(adjusted_rand_score(codes, labels)))
    return (float(np.mean(scores)) if scores else 0.0), len(scores)


NO_FAMILIES = "no two codes of one family code two paragraphs each: nothing to fit on"


def fit(
    index: Index,
    fams: Sequence[Family] | None = None,
    grid: Sequence[Setting] = GRID,
    baseline: Setting = BASELINE,
) -> dict[str, Any]:
    """Every family scored held out (the setting fitted on other roots' families), beside the
    baseline; and the setting fitted on all families, which is what ships."""
    fams = families(index) if fams is None else fams
    if not fams:
        raise ValueError(NO_FAMILIES)
    settings = list(dict.fromkeys([*grid, baseline]))
    table = {(s, f.name): family_score(index, f, s) for s in settings for f in fams}

    def mean(s: Setting, names: Sequence[str]) -> float:
        scored = [table[s, n] for n in names]
        total = sum(n for _, n in scored)
        return sum(a * n for a, n in scored) / total if total else 0.0

    rows = []
    for f in fams:
        others = [g.name for g in fams if g.root != f.root]
        chosen = max(grid, key=lambda s: mean(s, others)) if others else baseline
        rows.append(
            {
                "family": f.name,
                "codes": f.codes(),
                "samples": table[chosen, f.name][1],
                "setting": chosen.to_dict(),
                "ari_fitted": round(table[chosen, f.name][0], 4),
                "ari_baseline": round(table[baseline, f.name][0], 4),
            }
        )
    names = [f.name for f in fams]
    best = max(grid, key=lambda s: mean(s, names))
    return {
        "families": rows,
        "held_out": {
            "ari_fitted": round(float(np.mean([r["ari_fitted"] for r in rows])), 4),
            "ari_baseline": round(float(np.mean([r["ari_baseline"] for r in rows])), 4),
        },
        "fitted": best.to_dict(),
        "baseline": baseline.to_dict(),
        "shipped": SHIPPED.to_dict(),
    }


# ---- naming a cluster -----------------------------------------------------------------------

# Talk that says nothing about a practice: fillers, hedges and the words of any ML interview.
_FILLERS = frozenset(
    "uh um uhm hmm yeah yes okay ok like just really actually basically maybe kind sort know "
    "think mean guess thing things lot lots stuff way right sure gonna wanna pretty example "
    "different particular specific usually generally probably able want need let going got "
    "did does doing done said say says tell told make made use used using work worked working "
    "sometimes time times case cases point also well thats obviously".split()
)
# The same in the study's other language, which the stop-word lists leave in: "euh" is "uh".
_FILLERS_BY_LANGUAGE = {
    "fr": frozenset("euh ben bah hein bon ouais voilà plutôt truc trucs".split())
}
# Words of any script (not only a-z: "plutôt" must not become "plut", nor "prédictive"
# "dictive"); a short elided article or pronoun ("l'", "d'", "qu'") is dropped first, so
# "l'imputation" is "imputation", while English contractions ("don't") stay whole and are
# left out of names.
_LABEL_WORD = re.compile(r"[^\W\d_][\w'-]*[^\W\d_]")
_ELIDED = re.compile(r"\b(?:[^\W\d_]{1,2}|qu)'(?=[^\W\d_])")


def _label_words(text: str) -> list[str]:
    return _LABEL_WORD.findall(_ELIDED.sub(" ", text.lower().replace("\u2019", "'")))


@cache
def _stop_words(languages: frozenset[str] = frozenset()) -> frozenset[str]:
    """English stop words and fillers, and those of the other ``languages`` (ISO codes) the
    quotes are in, from the ``stop-words`` package's lists."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
    from stop_words import StopWordError, get_stop_words

    words = set(ENGLISH_STOP_WORDS) | _FILLERS
    for lang in languages - {"en"}:
        try:
            words |= {w.replace("\u2019", "'") for w in get_stop_words(lang)}
        except StopWordError:  # a language without a list: its function words may show
            pass
        words |= _FILLERS_BY_LANGUAGE.get(lang, frozenset())
    return frozenset(words)


def label_clusters(
    texts: dict[int, list[str]],
    question: str = "",
    document_frequency: Callable[[str], int] | None = None,
    n: int = 3,
    languages: Collection[str] = (),
) -> dict[int, str]:
    """Each cluster's most distinctive words, from its texts (the caller gives one per
    interview, its quotes joined).

    A word scores by how many of the cluster's texts say it (a word one text repeats is that
    text's, not the group's), times how rare it is among the clusters (class-based TF-IDF).
    Ties, which are all there is in a one-text cluster, go to the word fewer of the corpus's
    passages use (``document_frequency`` of its stem, ``Index.document_frequency``), not to the
    alphabet: "model" says little in interviews about ML, "imputed" a lot.
    Inflections count as one word, shown as said most often ("dropped", "drop" → "drop" if
    more quotes say it). Stop words, fillers and the question's own words are left out: every
    group is about the question; the label says how this one differs. ``languages``: those of
    the quotes' interviews, whose stop words are left out too."""
    from .stores import stemmer

    stem = stemmer().stemWord
    stop = _stop_words(frozenset(languages))
    asked = {stem(w) for w in _label_words(question)}
    quotes_saying: dict[int, Counter[str]] = {}
    surface: dict[str, Counter[str]] = {}
    for key, quotes in texts.items():
        said: Counter[str] = Counter()
        for quote in quotes:
            words = {
                w for w in _label_words(quote) if len(w) > 2 and w not in stop and "'" not in w
            }
            stems = set()
            for w in words:
                s = stem(w)
                if s not in asked:
                    surface.setdefault(s, Counter())[w] += 1
                    stems.add(s)
            said.update(stems)
        quotes_saying[key] = said
    clusters_saying = Counter(s for said in quotes_saying.values() for s in said)
    k = len(texts)
    out = {}
    for key, said in quotes_saying.items():
        weight = {s: said[s] * np.log(1 + k / clusters_saying[s]) for s in said}
        ranked = sorted(
            said, key=lambda s: (-weight[s], document_frequency(s) if document_frequency else 0, s)
        )
        out[key] = " · ".join(surface[s].most_common(1)[0][0] for s in ranked[:n]) or "other"
    return out
