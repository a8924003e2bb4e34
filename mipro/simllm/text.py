"""Word handling of the simulated LLM: tokens, stopwords, light stemming, stable hashes.

Nothing here knows any dataset: the stopword list is generic English plus the generic vocabulary of
classification instructions ("intent", "customer", "mentions", ...).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from functools import lru_cache

_STOPWORDS_TEXT = """a about above after again against all also am an and any are as at be because been before
    being below between both but by can cannot could did do does doing done down during each either
    else even ever every few for from further get gets getting got had has have having he her here
    hers herself him himself his how however i i'd i'll i'm i've if im in into is it it's its itself
    ive just let me might more most much must my myself need needs no nor not now of off on once one
    only or other others our ours ourselves out over own please same shall she should so some still
    such than that that's the their theirs them themselves then there these they this those though
    through to too under until up upon us use using very via want wants was way we were what when
    where whether which while who whom whose why will with within without would yes yet you your
    yours yourself yourselves dont don't cant can't wont won't didnt didn't isnt isn't doesnt doesn't
    havent haven't wasnt wasn't ok okay hi hello thanks thank what's where's how's there's
    i'd i'll you're we're they're aren't couldn't shouldn't wouldn't hasn't hadn't
    able already always another anyone anything around away back best better come comes could
    know knew known like likely look looks made make makes many may maybe mean means new next
    now often old really right said see seem seems seen sure take tell think try trying go goes
    going gone well went help happen happened happening happens keep let's lot lots never last
    since soon sometime sometimes thing things time times today way ways yesterday why"""

_GENERIC_TEXT = """intent intents label labels category categories class classes classify classification
    customer customers user users query queries question questions message messages request
    requests mention mentions mentioned mentioning talk talks talking say says ask asks asking
    word words answer answers output outputs input inputs rule rules given respond response reply
    text exactly correct choose pick select return tool call list provided above below following
    if then when is the about like contain contains containing include includes including refer
    refers related regarding something anything thing things"""

STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
GENERIC = frozenset(_GENERIC_TEXT.split())

_WORD = re.compile(r"[a-z][a-z0-9]*(?:'[a-z]+)?")
_SUFFIXES = ("ing", "ion", "ies", "ied", "ed", "es", "al", "s", "e", "y")
_MIN_STEM = 3


def _strip_one(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= _MIN_STEM:
            base = word[: -len(suffix)]
            if len(base) > _MIN_STEM and base[-1] == base[-2] and base[-1] not in "aeiouls":
                base = base[:-1]
            return base
    return word


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light stemmer: strips up to two common suffixes if a stem of >= 3 letters remains.

    "arrived", "arrival" and "arrive" all become "arriv"; "transactions" becomes "transact".
    """
    return _strip_one(_strip_one(word))


def words(text: str) -> list[str]:
    """Lowercase words of `text` (letters first; apostrophes kept inside words)."""
    return _WORD.findall(text.lower())


def content_stems(text: str, drop: Iterable[str] = ()) -> frozenset[str]:
    """Stems of the content words of `text`: no stopwords, no words shorter than 2 letters."""
    dropped = frozenset(drop)
    out = {stem(w.replace("'", "")) for w in words(text) if w not in STOPWORDS and len(w) >= 2}
    return frozenset(out - dropped)


def hint_stems(text: str) -> frozenset[str]:
    """Content stems of an instruction line, without the generic vocabulary of instructions."""
    return content_stems(text) - _GENERIC_STEMS


@lru_cache(maxsize=4096)
def label_stems(label: str) -> frozenset[str]:
    """Content stems of a label's name: "card_arrival" -> {"card", "arriv"}."""
    return content_stems(re.sub(r"[_\-/.]+", " ", label))


_GENERIC_STEMS = frozenset(GENERIC | {stem(w) for w in GENERIC})


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 0.0


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of the parts' reprs that is stable across processes (no PYTHONHASHSEED)."""
    raw = "\x1f".join(repr(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")


def unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts."""
    return stable_hash(*parts) / 2**64
