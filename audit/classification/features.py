"""Lexical features: word uni/bigrams and character n-grams (per word), sublinear TF-IDF, L2.

Pure Python, no third-party packages: a prompt becomes a sparse vector {feature: weight}.
Only a bounded window of a long prompt is read (its head and tail), which keeps the cost per
prompt flat; the head holds the instruction in most prompts and the tail in "... summarise the
above" prompts.
"""

import itertools
import math
import re
import unicodedata
from collections import Counter

HEAD_CHARS = 2000
TAIL_CHARS = 600
LEAD_WORDS = 20

_WORD = re.compile(r"\w+")
_DIGITS = re.compile(r"\d")
_SENTENCE_END = re.compile(r"[.?!:;\n。？！：]")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")

SparseVector = dict[str, float]


def _words(text: str) -> list[str]:
    return text.split()


# Topic cues that say "private life" or "at work" whatever the task is; they let the model
# generalise to private topics the labeled set never mentions (a lexicon, not learned).
PERSONAL_CUES = frozenset(
    _words(
        """
        my_son my_daughter my_kids my_wife my_husband my_partner my_girlfriend my_boyfriend
        my_mum my_mom my_dad my_mother my_father my_sister my_brother my_friend my_family my_cat
        my_dog my_neighbours my_neighbors my_landlord my_nephew my_niece my_grandma my_in-laws
        son daughter kids toddler child children baby wife husband girlfriend boyfriend fiancée
        fiancé nephew niece grandma grandpa cousin puppy kitten pet dog cat birthday anniversary
        wedding valentine christmas halloween carnival holiday holidays vacation trip hotel
        flight recipe cook cooking dinner lunch bake bread wine restaurant garden gardening
        hobby guitar piano chess football padel marathon running workout gym yoga hiking camping
        beach mortgage rent landlord apartment flat furniture sofa car insurance netflix
        playlist song songs movie movies films novel novels podcast game games puzzle quiz pub
        girlfriend's sohn tochter kinder frau mann urlaub geburtstag rezept hund katze wohnung
        garten familie fils fille enfants femme mari vacances anniversaire recette chien chat
        maison famille hijo hija hijos esposa marido vacaciones cumpleaños receta perro gato
        casa familia 子供 家族 旅行 誕生日 料理 趣味 週末 夏休み 温泉
        """
    )
)
WORK_CUES = frozenset(
    _words(
        """
        customer customers client clients prospect prospects company team colleagues colleague
        employee employees manager managers our_team our_company our_customers our_product
        stakeholders board quarter q1 q2 q3 q4 kpi revenue invoice invoices contract contracts
        ticket tickets release deploy production prod staging roadmap okr okrs b2b saas hr
        payroll kunde kunden firma team mitarbeiter client clients entreprise équipe cliente
        clientes empresa equipo 顧客 社員 会社 部署
        """
    )
)


def window(text: str) -> str:
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + " \n " + text[-TAIL_CHARS:]


def raw_features(text: str) -> Counter[str]:
    """Counts of the features of a text (before weighting)."""
    normalized = _DIGITS.sub("0", unicodedata.normalize("NFKC", window(text)).lower())
    words = _WORD.findall(normalized)
    counts: Counter[str] = Counter(words)
    counts.update([f"{a} {b}" for a, b in itertools.pairwise(words)])
    cue_words = [f"{a}_{b}" for a, b in itertools.pairwise(words)] + words
    personal = sum(1 for word in cue_words if word in PERSONAL_CUES)
    work = sum(1 for word in cue_words if word in WORK_CUES)
    if personal:
        counts["@personal"] = personal
    if work:
        counts["@work"] = work
    # Most prompts open with the instruction ("Translate ...", "Summarize ..."): mark lead words.
    first = _SENTENCE_END.split(normalized.lstrip(), maxsplit=1)[0]
    lead = _WORD.findall(first)[:LEAD_WORDS]
    counts.update(["^" + word for word in lead])
    counts.update([f"^{a} {b}" for a, b in itertools.pairwise(lead)])
    grams: list[str] = []
    for word in set(words):
        if len(word) > 30:
            continue
        padded = f" {word} "
        size = len(padded)
        grams.extend(padded[i : i + 3] for i in range(size - 2))
        grams.extend(padded[i : i + 4] for i in range(size - 3))
        if _CJK.search(word):  # no spaces between Japanese/Chinese words: add single characters
            grams.extend(word)
    counts.update("#" + gram for gram in grams)
    return counts


def tfidf(
    counts: Counter[str], idf: dict[str, float], unknown: float | None = None
) -> SparseVector:
    """Sublinear TF times IDF, L2-normalised. Features missing from `idf` are dropped, or
    weighted `unknown` when given (for similarity to a tenant's own words)."""
    return normalize(
        {
            feature: (1.0 + math.log(count)) * weight
            for feature, count in counts.items()
            if (weight := idf.get(feature, unknown)) is not None
        }
    )


def cosine(a: SparseVector, b: SparseVector) -> float:
    """Dot product of two L2-normalised sparse vectors."""
    if len(a) > len(b):
        a, b = b, a
    return sum(value * b.get(feature, 0.0) for feature, value in a.items())


def normalize(vector: SparseVector) -> SparseVector:
    norm = math.sqrt(sum(value * value for value in vector.values()))
    if norm == 0.0:
        return {}
    return {feature: value / norm for feature, value in vector.items()}
