"""Reaching interviews in another language: bilingual keyword expansion of an English question.

The bundled embedding model is English-only, and no offline multilingual model does better on
this corpus (measured: multilingual-e5-small is worse on English and 5x slower). A French
interview is still found by the words it shares with the question once those words are in
French: the question's domain terms are expanded through a small glossary of the study's
vocabulary, and the expansion is used for BM25 and as a second query vector for interviews in
that language. Where that is not enough, answers say the other-language interviews were searched
less reliably (see ``scan``).
"""

from __future__ import annotations

import re

# English word stem (lower case) → French words used for the same thing in the interviews.
_EN_FR: dict[str, str] = {
    "accura": "précision exactitude",
    "algorithm": "algorithme",
    "annotat": "annotation annoter étiquetage",
    "anomal": "anomalie anomalies",
    "bias": "biais",
    "client": "client clients",
    "clean": "nettoyage nettoyer",
    "collect": "collecte collecter",
    "communicat": "communication communiquer",
    "compute": "calcul",
    "cost": "coût coûts",
    "data": "données",
    "dataset": "données jeu",
    "deploy": "déploiement déployer",
    "document": "documentation",
    "drift": "dérive",
    "engine": "moteur moteurs",
    "error": "erreur erreurs",
    "evaluat": "évaluation évaluer",
    "experiment": "expérience expérimentation",
    "explain": "explicabilité expliquer",
    "feature": "variable variables caractéristiques",
    "gap": "manquantes trous",
    "imbalanc": "déséquilibre",
    "impute": "imputation imputer",
    "label": "étiquette étiquettes étiquetage",
    "learn": "apprentissage",
    "maintenan": "maintenance",
    "metric": "métrique métriques",
    "miss": "manquantes manquant manque",
    "model": "modèle modèles",
    "monitor": "surveillance monitoring suivi",
    "noise": "bruit",
    "noisy": "bruitées bruit",
    "outlier": "aberrantes aberrant",
    "perform": "performance",
    "pipelin": "pipeline",
    "predict": "prédiction prédire",
    "privacy": "confidentialité",
    "problem": "problème problèmes",
    "product": "production",
    "qualit": "qualité",
    "requirement": "exigences besoins",
    "reproduc": "reproductibilité reproduire",
    "sensor": "capteur capteurs",
    "stakeholder": "client parties",
    "test": "test tests tester",
    "tool": "outil outils",
    "train": "entraînement entraîner",
    "valid": "validation valider",
    "value": "valeurs valeur",
    "version": "version versions versionnage",
    "weather": "météo",
}
_WORD = re.compile(r"[A-Za-z][A-Za-z-]+")


def french_keywords(question: str) -> str:
    """French words for the question's domain terms (empty when none is in the glossary).

    Names (MLflow, Kedro) are kept as they are: they are the same words in both languages.
    """
    out: list[str] = []
    for i, w in enumerate(_WORD.findall(question)):
        low = w.lower()
        if i > 0 and w[:1].isupper() and not low.startswith(tuple(_EN_FR)) and len(w) > 2:
            out.append(w)
            continue
        for stem, fr in _EN_FR.items():
            if low.startswith(stem):
                out.append(fr)
                break
    return " ".join(dict.fromkeys(out))
