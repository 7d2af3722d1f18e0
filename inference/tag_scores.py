"""Garments found in photos scored against the photos' tags: precision, recall and F1 of detection.

A photo's found garments and its tags are two sets of class names; only garment classes count (the keys of
group_of_class), so background, skin and hair are left out on both sides. Per class, a true positive is a
photo where the class is both found and tagged; micro scores sum the counts over all classes and photos. At
the level of garment groups each photo's classes are first replaced by their groups ("tops", "footwear"), so a
blouse found on a photo tagged with a shirt is right there. A score without a denominator (a class never
found: no precision) is None.
"""

from collections import Counter
from collections.abc import Iterable

SCORE_DECIMALS = 4


def detection_scores(true_positives: int, found: int, tagged: int) -> dict:
    """precision, recall and f1 of found detections against tagged ones, with the counts they come from."""
    precision = true_positives / found if found else None
    recall = true_positives / tagged if tagged else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    rounded = {name: None if value is None else round(value, SCORE_DECIMALS)
               for name, value in (("precision", precision), ("recall", recall), ("f1", f1))}
    return {**rounded, "true_positives": true_positives, "found": found, "tagged": tagged}


def _scores_of(photos: list[tuple[set[str], set[str]]], order: list[str]) -> tuple[dict, dict]:
    """Micro scores and per-item scores (items in order, those found or tagged somewhere) of sets per photo."""
    found, tagged, hits = Counter(), Counter(), Counter()
    for found_items, tagged_items in photos:
        found.update(found_items)
        tagged.update(tagged_items)
        hits.update(found_items & tagged_items)
    micro = detection_scores(sum(hits.values()), sum(found.values()), sum(tagged.values()))
    per_item = {item: detection_scores(hits[item], found[item], tagged[item]) for item in order
                if found[item] or tagged[item]}
    return micro, per_item


def score_tags(photos: Iterable[tuple[Iterable[str], Iterable[str]]], group_of_class: dict[str, str]) -> dict:
    """{"photos", "micro", "per_class", "group_micro", "per_group"} for (found classes, tagged classes) per
    photo; classes outside group_of_class (no garments) are ignored, classes and groups keep its order."""
    classes = [({name for name in found if name in group_of_class}, {name for name in tagged if name in group_of_class})
               for found, tagged in photos]
    groups = [({group_of_class[name] for name in found}, {group_of_class[name] for name in tagged})
              for found, tagged in classes]
    micro, per_class = _scores_of(classes, list(group_of_class))
    group_micro, per_group = _scores_of(groups, list(dict.fromkeys(group_of_class.values())))
    return {"photos": len(classes), "micro": micro, "per_class": per_class, "group_micro": group_micro,
            "per_group": per_group}


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def tag_score_table(report: dict) -> str:
    """The report as a plain-text table: per class, then per group, each closed by its micro scores."""
    lines = [f"{'':<24}{'precision':>10}{'recall':>8}{'f1':>7}{'found':>7}{'tagged':>8}"]

    def row(name: str, scores: dict) -> str:
        return (f"{name:<24}{_cell(scores['precision']):>10}{_cell(scores['recall']):>8}{_cell(scores['f1']):>7}"
                f"{scores['found']:>7}{scores['tagged']:>8}")

    lines += [row(name, scores) for name, scores in report["per_class"].items()]
    lines.append(row("micro, classes", report["micro"]))
    lines += [row(f"group {name}", scores) for name, scores in report["per_group"].items()]
    lines.append(row("micro, groups", report["group_micro"]))
    return "\n".join(lines)
