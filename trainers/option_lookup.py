"""What the pipeline reads from TrainingOptions' fields (trainers/options.py): each option's names, flag, default
and roles, options built from train()'s keywords and turned back into them, and the checks of their values.
"""

from dataclasses import MISSING, Field, fields

from helpers.errors import ClothVisionError
from trainers import options as option_table
from trainers.options import TrainingOptions


def option_fields() -> tuple[Field, ...]:
    # Looked up in the module at each call (here and in make_options), so that a TrainingOptions extended
    # with a field, as tests/test_run_config.py does, is the one every reader sees.
    return fields(option_table.TrainingOptions)


def keyword_of(option_field: Field) -> str:
    """The name train(), the parser's namespace and <model>_config.json use for a field."""
    return option_field.metadata["keyword"] or option_field.name


def option_keyword_names() -> set[str]:
    """Every name train() accepts as a keyword: what a config file or a checkpoint may record."""
    return {keyword_of(option_field) for option_field in option_fields()}


def keywords_with_resume_role(role: str) -> frozenset[str]:
    """train()'s names of the options whose field has this RESUME_ROLES role."""
    return frozenset(keyword_of(option_field) for option_field in option_fields()
                     if option_field.metadata["resume"] == role)


def reported_options(options: TrainingOptions) -> dict:
    """The options the test report records, by train()'s names."""
    return {keyword_of(option_field): getattr(options, option_field.name) for option_field in option_fields()
            if option_field.metadata["reported"]}


def flag_of(option_field: Field) -> str:
    return option_field.metadata["flag"] or "--" + keyword_of(option_field).replace("_", "-")


def default_of(option_field: Field):
    return option_field.default if option_field.default is not MISSING else option_field.default_factory()


def make_options(**keywords) -> TrainingOptions:
    """TrainingOptions from train()'s keywords; an unknown keyword is refused, naming the valid ones."""
    by_keyword = {keyword_of(option_field): option_field.name for option_field in option_fields()}
    unknown = sorted(set(keywords) - set(by_keyword))
    if unknown:
        raise ClothVisionError(
            f"unknown training option {', '.join(unknown)}: use one of {', '.join(sorted(by_keyword))}"
        )
    values = {by_keyword[keyword]: str(value) if hasattr(value, "__fspath__") else value
              for keyword, value in keywords.items()}
    if not isinstance(values.get("model", ""), str):  # a list of names, as train(model=[...]) may pass
        values["model"] = ",".join(values["model"])
    return option_table.TrainingOptions(**values)


def option_keywords(options: TrainingOptions) -> dict:
    """The options as train()'s keywords: what <model>_config.json and the checkpoint's 'args' record."""
    return {keyword_of(option_field): getattr(options, option_field.name) for option_field in option_fields()}


def check_option_values(options: TrainingOptions) -> None:
    """Each value against its field's choices and check: one line naming the flag, the value and the fix."""
    for option_field in option_fields():
        value, metadata = getattr(options, option_field.name), option_field.metadata
        display = f"{value:g}" if isinstance(value, float) else value
        if metadata["choices"] and value not in metadata["choices"]:
            raise ClothVisionError(f"{flag_of(option_field)} {display}: use one of {', '.join(metadata['choices'])}")
        if metadata["check"] and value is not None and not metadata["check"](value):
            raise ClothVisionError(f"{flag_of(option_field)} {display}: {metadata['requirement']}")
