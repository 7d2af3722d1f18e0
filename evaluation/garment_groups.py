"""Garment groups: the dataset's classes gathered into about ten kinds of garment a person names ("tops",
"footwear"), for group-level metrics, descriptions and searches.

The table is data, garment_groups.json beside this file, keyed by class name so that both class lists work
(the background is 'null' in label_list.mat and 'none' in class_dict.csv). A class list is matched against
it once, by garment_groups_for(); a class the table does not know is an error that names it.
"""

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from helpers.errors import ClothVisionError, error_reason

GROUP_TABLE_FILE = Path(__file__).with_name("garment_groups.json")
# The group of the pixels that are not the person; descriptions measure shares of the rest.
BACKGROUND_GROUP = "background"


@dataclass(frozen=True)
class GarmentGroup:
    name: str
    description: str
    is_garment: bool
    classes: tuple[str, ...]


@cache
def read_group_table(path: Path = GROUP_TABLE_FILE) -> tuple[GarmentGroup, ...]:
    """The groups of the table file, in its order; a class listed in two groups is refused."""
    fix = f"fix {path} (a list 'groups' of {{name, garment, description, classes}})"
    try:
        groups = tuple(GarmentGroup(entry["name"], entry["description"], bool(entry["garment"]),
                                    tuple(entry["classes"]))
                       for entry in json.loads(path.read_text(encoding="utf-8"))["groups"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ClothVisionError(f"garment group table {path} cannot be read ({error_reason(error)}): {fix}") from None
    group_of_class: dict[str, str] = {}
    for group in groups:
        for class_name in group.classes:
            if class_name in group_of_class:
                raise ClothVisionError(f"garment group table {path} puts class '{class_name}' in both "
                                       f"'{group_of_class[class_name]}' and '{group.name}': keep it in one group")
            group_of_class[class_name] = group.name
    return groups


class GarmentGroups:
    """The group of every class of one class list, in class-index order."""

    def __init__(self, class_names: list[str], table: tuple[GarmentGroup, ...], table_file: Path = GROUP_TABLE_FILE):
        self.class_names = [str(name) for name in class_names]
        group_of_class = {class_name: group for group in table for class_name in group.classes}
        unknown = [name for name in self.class_names if name not in group_of_class]
        if unknown:
            raise ClothVisionError(
                f"class '{unknown[0]}' has no garment group in {table_file}"
                + (f" (nor {', '.join(repr(name) for name in unknown[1:])})" if len(unknown) > 1 else "")
                + f": add it to one of the groups {', '.join(group.name for group in table)}")
        # Groups without a class in this list are left out, so group metrics have no empty rows.
        used = {group_of_class[name].name for name in self.class_names}
        self.group_names = [group.name for group in table if group.name in used]
        self.group_of_class = [group_of_class[name].name for name in self.class_names]
        self.group_index = np.array([self.group_names.index(name) for name in self.group_of_class], dtype=np.int64)
        self.garment_classes = np.array([group_of_class[name].is_garment for name in self.class_names])

    def mapping(self) -> dict[str, list[str]]:
        """{group: [its class names in class-index order]}, groups in table order."""
        return {group: [name for name, group_of in zip(self.class_names, self.group_of_class, strict=True)
                        if group_of == group] for group in self.group_names}


def table_class_names() -> list[str]:
    """The table's class list in CCP's order: the background's first name ('null'), then the other classes
    alphabetically, as label_list.mat lists them. For synthetic data that must look real."""
    table = read_group_table()
    background = next(group for group in table if group.name == BACKGROUND_GROUP).classes[0]
    return [background] + sorted(name for group in table if group.name != BACKGROUND_GROUP for name in group.classes)


def garment_groups_for(class_names: list[str], table_file: Path = GROUP_TABLE_FILE) -> GarmentGroups:
    """Match a class list (a cache's or a checkpoint's) against the group table."""
    return GarmentGroups(class_names, read_group_table(table_file), table_file)
