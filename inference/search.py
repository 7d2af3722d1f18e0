"""Find the photos whose descriptions match a witness's words: "grey coat, red shoes".

A query is comma-separated terms; each term is an optional colour word and a garment: a class ("coat") or a
garment group ("footwear", which also matches every class in it; a word that names both, "accessories",
means the group). A term scores against a photo's best-matching garment:

    kind   1 for the class named (or any class of the group named); SAME_GROUP_CREDIT (0.5) for another
           class of the named class's group (a jacket for "coat": both outerwear); otherwise no match
    colour 1 for the colour named (or when the term names none); for another colour OTHER_COLOUR_CREDIT (0.5)
           × (1 - ΔE / COLOUR_DISTANCE_SCALE), ΔE the CIELAB distance between the nearest reference point of
           the named colour and the garment's measured colour, floored at 0: a navy coat is closer to "black
           coat" than a red one

A term's score is kind × colour of its best garment, a photo's score the mean over the terms (1 = every term
matched exactly). Photos with equal scores rank by the share of the person their matching garments cover
(bigger garments are seen more surely), then by name. When every photo scores 0, no_match_message says so and
names the garments the photos do show that come nearest to each term.
"""

from dataclasses import dataclass
from difflib import SequenceMatcher, get_close_matches

import numpy as np

from evaluation.garment_groups import read_group_table
from helpers.colour_space import srgb_to_lab
from helpers.errors import ClothVisionError
from inference.attire import Garment, PhotoDescription
from inference.colour_names import COLOUR_WORDS, distance_to_colour

SAME_GROUP_CREDIT = 0.5
OTHER_COLOUR_CREDIT = 0.5
COLOUR_DISTANCE_SCALE = 100.0
# Spellings people type that mean one of the colour words.
COLOUR_SPELLINGS = {"gray": "grey"}
# How alike a misspelt word and a valid one must be (difflib's ratio) to be suggested: 'gery' and 'grey' are
# 0.75 alike, while 'cloak' and 'coat' (0.67) are different words, not a slip of the keyboard.
SUGGESTION_CUTOFF = 0.75
# How many of the garments the photos show are offered for a term that no photo matches.
NEAREST_GARMENTS_SHOWN = 3
# Garment words people type that the CCP classes name otherwise.
GARMENT_SYNONYMS = {"trousers": "pants", "slacks": "pants", "tee": "t-shirt", "tshirt": "t-shirt",
                    "trainers": "sneakers", "handbag": "bag"}


@dataclass(frozen=True)
class Term:
    colour: str | None
    garment: str  # a class or group name
    group: str  # the group of that class, or the group itself

    def __str__(self) -> str:
        return f"{self.colour} {self.garment}" if self.colour else self.garment


@dataclass(frozen=True)
class Match:
    description: PhotoDescription
    score: float
    matched_share: float


def garment_vocabulary() -> dict[str, str]:
    """Every word a term may name as its garment -> its group: the garment groups and their classes."""
    groups = [group for group in read_group_table() if group.is_garment]
    vocabulary = {class_name: group.name for group in groups for class_name in group.classes}
    vocabulary.update({group.name: group.name for group in groups})
    return vocabulary


def parse_query(query: str) -> list[Term]:
    """'grey coat, red footwear' -> terms; an unknown word is an error suggesting the nearest valid one, or
    listing them all."""
    vocabulary = garment_vocabulary()
    terms = []
    for text in query.split(","):
        words = text.lower().split()
        if not words:
            continue
        colour = COLOUR_SPELLINGS.get(words[0], words[0])
        if colour in COLOUR_WORDS:
            words = words[1:]
        else:
            colour = None
        garment = GARMENT_SYNONYMS.get(" ".join(words), " ".join(words))
        if garment not in vocabulary:
            advice = unknown_term_advice(words, colour, vocabulary)
            raise ClothVisionError(f"query term '{text.strip()}': {advice}")
        terms.append(Term(colour, garment, vocabulary[garment]))
    if not terms:
        raise ClothVisionError(f"query '{query}' names no garment: write terms such as 'grey coat, red shoes'")
    return terms


def unknown_term_advice(words: list[str], colour: str | None, vocabulary: dict[str, str]) -> str:
    """What is wrong with a term naming no known garment, with the nearest spelling when one is close."""
    garments = [*vocabulary, *GARMENT_SYNONYMS]
    rest = " ".join(words[1:])
    if colour is None and GARMENT_SYNONYMS.get(rest, rest) in vocabulary:
        problem = f"'{words[0]}' is not a colour word"
        guesses = get_close_matches(words[0], COLOUR_WORDS, 1, SUGGESTION_CUTOFF)
        suggestion = f"{guesses[0]} {rest}" if guesses else None
    elif words:
        garment = " ".join(words)
        problem = f"'{garment}' is not a garment"
        guesses = get_close_matches(garment, garments, 1, SUGGESTION_CUTOFF)
        suggestion = " ".join(filter(None, (colour, guesses[0]))) if guesses else None
    else:
        problem, suggestion = "it names no garment", None
    if suggestion is not None:
        return f"{problem}: did you mean '{suggestion}'?"
    return (f"{problem}; write an optional colour ({', '.join(COLOUR_WORDS)}) and a garment "
            f"({', '.join(sorted(vocabulary))})")


def colour_credit(term: Term, garment: Garment) -> float:
    if term.colour is None or term.colour == garment.colour:
        return 1.0
    distance = distance_to_colour(term.colour, srgb_to_lab(np.array(garment.rgb)))
    return OTHER_COLOUR_CREDIT * max(0.0, 1.0 - distance / COLOUR_DISTANCE_SCALE)


def kind_credit(term: Term, garment: Garment) -> float:
    if garment.name == term.garment or garment.group == term.garment:
        return 1.0
    return SAME_GROUP_CREDIT if garment.group == term.group else 0.0


def term_score(term: Term, garments: tuple[Garment, ...]) -> tuple[float, float]:
    """(score, share) of the garment that matches the term best; (0, 0) when none does."""
    return max(((kind_credit(term, garment) * colour_credit(term, garment), garment.share)
                for garment in garments if kind_credit(term, garment) > 0), default=(0.0, 0.0))


def rank(descriptions: list[PhotoDescription], terms: list[Term]) -> list[Match]:
    """Every photo with its score, best first."""
    matches = []
    for description in descriptions:
        scores = [term_score(term, description.garments) for term in terms]
        matches.append(Match(description, sum(score for score, _ in scores) / len(terms),
                             sum(share for _, share in scores)))
    return sorted(matches, key=lambda match: (-match.score, -match.matched_share, match.description.image))


def nearest_garments(term: Term, descriptions: list[PhotoDescription]) -> list[str]:
    """The garments the photos show ('white boots') nearest to a term: the named kind, then its group, then the
    colour credit, then the most alike spelling."""
    shown = {(garment.colour, garment.name): garment
             for description in descriptions for garment in description.garments}

    def nearness(garment: Garment) -> tuple:
        spelling = SequenceMatcher(None, term.garment, garment.name).ratio()
        return (-kind_credit(term, garment), -colour_credit(term, garment), -spelling, garment.colour, garment.name)

    nearest = sorted(shown.values(), key=nearness)[:NEAREST_GARMENTS_SHOWN]
    return [f"{garment.colour} {garment.name}" for garment in nearest]


def no_match_message(terms: list[Term], descriptions: list[PhotoDescription]) -> str:
    """What to say when every photo scores 0: no photo matches, and the nearest garments the photos show."""
    query = ", ".join(map(str, terms))
    advice = "; ".join(
        f"for '{term}' the nearest they show: " + ", ".join(f"'{garment}'" for garment in nearest)
        if (nearest := nearest_garments(term, descriptions)) else f"they show no garment to match '{term}'"
        for term in terms
    )
    return f'No photo of the {len(descriptions)} matches "{query}": {advice}'
