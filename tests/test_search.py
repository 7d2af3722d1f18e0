"""Finding photos by a description: query terms, scores, ranking, and the top-3 rate on real CCP photos."""

import re

import numpy as np
import pytest

from helpers.colour_space import srgb_to_lab
from helpers.errors import ClothVisionError
from inference.attire import Garment, LabelSource, PhotoDescription, describe_files
from inference.search import Term, no_match_message, parse_query, rank, term_score

SEARCHED_PHOTOS = 30
REQUIRED_TOP3_RATE = 0.8


def photo(name: str, *garments: tuple[str, str, str, tuple[int, int, int], float]) -> PhotoDescription:
    return PhotoDescription(name, name, "label", tuple(Garment(*garment) for garment in garments))


GREY_COAT = ("coat", "outerwear", "grey", (128, 128, 128), 0.5)
NAVY_COAT = ("coat", "outerwear", "navy", (30, 40, 80), 0.5)
RED_COAT = ("coat", "outerwear", "red", (200, 30, 40), 0.5)
GREY_JACKET = ("jacket", "outerwear", "grey", (128, 128, 128), 0.4)
RED_SHOES = ("shoes", "footwear", "red", (200, 30, 40), 0.05)
RED_BOOTS = ("boots", "footwear", "red", (200, 30, 40), 0.08)


def test_terms_are_an_optional_colour_and_a_class_or_group():
    assert parse_query("grey coat, red footwear,shoes , Gray  T-shirt") == [
        Term("grey", "coat", "outerwear"), Term("red", "footwear", "footwear"), Term(None, "shoes", "footwear"),
        Term("grey", "t-shirt", "tops")]
    assert parse_query("black accessories") == [Term("black", "accessories", "accessories")]  # the group


@pytest.mark.parametrize(("query", "fragment"), [
    ("crimson coat", "'crimson' is not a colour word"),
    ("red cloak", "'cloak' is not a garment"),
    ("red", "it names no garment"),
    ("grey hair", "'hair' is not a garment"),
])
def test_unknown_words_are_refused_listing_the_valid_ones(query, fragment):
    with pytest.raises(ClothVisionError) as error:
        parse_query(query)
    message = str(error.value)
    assert fragment in message and "\n" not in message
    assert "black, grey, white, red, orange, yellow, green, blue, navy, purple, pink, brown, beige" in message
    assert "coat" in message and "footwear" in message and "skin" not in message


def test_an_empty_query_is_refused():
    with pytest.raises(ClothVisionError, match="names no garment: write terms such as"):
        parse_query(" , ")


def test_a_term_scores_fully_partly_or_not_at_all():
    [grey_coat] = parse_query("grey coat")
    assert term_score(grey_coat, (Garment(*GREY_COAT),)) == (1.0, 0.5)
    # Present in another colour: half, less the further the colour (CIELAB) from grey.
    navy, red = (term_score(grey_coat, (Garment(*garment),))[0] for garment in (NAVY_COAT, RED_COAT))
    assert 0 < red < navy < 0.5
    # Another class of the same group (a jacket for a coat) scores half as much.
    assert term_score(grey_coat, (Garment(*GREY_JACKET),)) == (0.5, 0.4)
    assert term_score(grey_coat, (Garment(*RED_SHOES),)) == (0.0, 0.0)
    [red_footwear] = parse_query("red footwear")
    assert term_score(red_footwear, (Garment(*RED_SHOES), Garment(*RED_BOOTS))) == (1.0, 0.08)


def test_colour_credit_is_measured_to_the_nearest_reference_point_of_the_named_colour():
    [grey_coat] = parse_query("grey coat")
    whitish, black = (term_score(grey_coat, (Garment("coat", "outerwear", colour, rgb, 0.5),))[0]
                      for colour, rgb in (("white", (215, 215, 215)), ("black", (25, 25, 28))))
    whitish_lab, light_grey_lab = srgb_to_lab(np.array([[215, 215, 215], [175, 175, 178]]))
    light_grey_distance = np.linalg.norm(whitish_lab - light_grey_lab)
    assert whitish == pytest.approx(0.5 * (1 - light_grey_distance / 100))
    assert whitish > black


def test_photos_rank_by_mean_term_score_then_by_the_share_of_matching_garments():
    photos = [photo("a.jpg", GREY_JACKET, RED_SHOES), photo("b.jpg", GREY_COAT), photo("c.jpg", RED_COAT, RED_BOOTS),
              photo("d.jpg", GREY_COAT, RED_SHOES), photo("e.jpg", GREY_COAT, RED_BOOTS)]
    ranked = rank(photos, parse_query("grey coat, red shoes"))
    # a's jacket and e's boots each score half: equal scores, and e's matching garments are the larger.
    assert [match.description.image for match in ranked][:3] == ["d.jpg", "e.jpg", "a.jpg"]
    assert [match.score for match in ranked][:3] == pytest.approx([1.0, 0.75, 0.75])
    boots_first = rank(photos, parse_query("grey coat, red footwear"))
    # d and e both match fully; e's boots cover more of the person than d's shoes.
    assert [match.description.image for match in boots_first][:2] == ["e.jpg", "d.jpg"]


def test_a_photo_is_found_by_its_two_largest_garments_among_30_real_photos(real_ccp_dir):
    photos = sorted((real_ccp_dir / "photos").glob("*.jpg"))[:SEARCHED_PHOTOS]
    descriptions, skipped = describe_files(photos, LabelSource())
    assert not skipped and len(descriptions) == SEARCHED_PHOTOS
    found = 0
    for description in descriptions:
        query = ", ".join(garment.words() for garment in description.garments[:2])
        ranked = [match.description.image for match in rank(descriptions, parse_query(query))]
        found += ranked.index(description.image) < 3
    top3_rate = found / len(descriptions)
    print(f"top-3 rate of a photo's own two largest garments among {SEARCHED_PHOTOS} photos: {top3_rate:.0%}")
    assert top3_rate >= REQUIRED_TOP3_RATE


@pytest.mark.parametrize(("query", "message"), [
    ("gery pants", "query term 'gery pants': 'gery' is not a colour word: did you mean 'grey pants'?"),
    ("blak trousers", "query term 'blak trousers': 'blak' is not a colour word: did you mean 'black trousers'?"),
    ("red sneekers", "query term 'red sneekers': 'sneekers' is not a garment: did you mean 'red sneakers'?"),
])
def test_a_slip_of_the_keyboard_gets_the_nearest_word_instead_of_the_whole_list(query, message):
    with pytest.raises(ClothVisionError, match=f"^{re.escape(message)}$"):
        parse_query(query)


def test_everyday_garment_words_are_read_as_the_ccp_classes():
    assert parse_query("grey trousers, white tee, trainers") == [
        Term("grey", "pants", "bottoms"), Term("white", "t-shirt", "tops"), Term(None, "sneakers", "footwear")]


def test_when_no_photo_matches_the_message_says_so_and_names_the_nearest_garments_shown():
    photos = [photo("a", GREY_JACKET, RED_SHOES), photo("b", RED_BOOTS)]
    # No kind matches: grey is the colour nearest white, then the spelling nearest 'dress' ('shoes').
    terms = parse_query("white dress, hat")
    assert {match.score for match in rank(photos, terms)} == {0.0}
    assert no_match_message(terms, photos) == (
        "No photo of the 2 matches \"white dress, hat\": for 'white dress' the nearest they show: "
        "'grey jacket', 'red shoes', 'red boots'; for 'hat' the nearest they show: "
        "'grey jacket', 'red boots', 'red shoes'")
    assert no_match_message(terms, [photo("c")]) == (
        "No photo of the 1 matches \"white dress, hat\": they show no garment to match 'white dress'; "
        "they show no garment to match 'hat'")
