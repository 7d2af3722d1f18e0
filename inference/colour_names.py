"""The colour of a garment as people name it: its dominant colour measured in CIELAB, robust to shadows and
patterns, named with the basic colour words used for clothes.

Measuring (dominant_colour):
1. At most MAX_SAMPLES of the garment's pixels, drawn with a seeded generator, so a coat costs the same as
   a ring and the same photo always gets the same words.
2. sRGB -> CIELAB (D65), where distances follow perceived differences.
3. k-means (KMEANS_CLUSTERS clusters) in Lab: a pattern or a print becomes clusters of its own instead of
   blending into a mean colour nobody sees (the mean of black and white stripes is a grey).
4. Clusters that could be one material under different light are joined. Scaling the light by f scales
   L* + 16, a* and b* alike by f^(1/3), so a shadow keeps the chromaticity (a*, b*) / (L* + 16) and lowers
   L* + 16 by a factor. The darker of two clusters is taken as the shadow of the lighter one when their
   chromaticities differ by at most SHADOW_CHROMATICITY_TOLERANCE and its L* + 16 is at least
   SHADOW_LIGHTNESS_RATIO of the lighter one's (light down to about an eighth).
5. The heaviest joined group wins; its colour is that of its lit part: the darkest of its lightest clusters
   that together hold LIT_SHARE of its pixels. A shadow over half a garment then keeps the lit colour, and a
   few highlights on a black jacket do not turn it grey.

Naming (colour_name): the nearest reference point, with lightness differences weighted by LIGHTNESS_WEIGHT:
lightness varies with the light far more than hue and chroma do, and the colour measured is already the lit
one. A word may have several reference points where people use it for visibly different colours (light blue
and denim are both "blue"). The words are the basic colour terms of clothing; none is merged, and navy,
beige and brown are kept beside blue, white and orange because shoppers and witnesses use them for dark
blue suits, light neutral trousers and leather. The reference points, as sRGB (r, g, b):

    black   (25, 25, 28)                                   black clothes photograph at L* 5-20, not 0
    grey    (90, 90, 92), (128, 128, 128), (175, 175, 178)  dark, mid and light greys
    white   (242, 242, 240)
    red     (200, 30, 40), (130, 20, 35)                    red and dark red (burgundy)
    orange  (240, 130, 30)
    yellow  (240, 210, 50), (200, 170, 40)                  yellow and mustard
    green   (50, 140, 70), (95, 110, 60), (150, 200, 120)   green, olive, light green
    blue    (40, 100, 200), (130, 170, 220), (80, 110, 160), (40, 60, 230)   blue, light blue, denim, royal
    navy    (30, 40, 80)                                    a blue dark enough to pass for black at night
    purple  (120, 60, 150), (180, 140, 200)                 purple and lilac
    pink    (240, 150, 180), (220, 60, 130)                 pink and hot pink
    brown   (120, 75, 45), (165, 115, 75), (90, 65, 55),    brown, tan leather, a dull dark brown, and taupe:
            (150, 122, 105)                                 overcast photos wash brown suede and leather out
    beige   (220, 200, 165), (195, 180, 150)                beige and stone: a low-chroma light yellow-red
"""

import numpy as np

from helpers.colour_space import srgb_to_lab

MAX_SAMPLES = 1000
KMEANS_CLUSTERS = 4
KMEANS_ITERATIONS = 10
SHADOW_CHROMATICITY_TOLERANCE = 0.08
SHADOW_LIGHTNESS_RATIO = 0.5
LIT_SHARE = 0.4
LIGHTNESS_WEIGHT = 0.5

REFERENCE_COLOURS = {
    "black": [(25, 25, 28)],
    "grey": [(90, 90, 92), (128, 128, 128), (175, 175, 178)],
    "white": [(242, 242, 240)],
    "red": [(200, 30, 40), (130, 20, 35)],
    "orange": [(240, 130, 30)],
    "yellow": [(240, 210, 50), (200, 170, 40)],
    "green": [(50, 140, 70), (95, 110, 60), (150, 200, 120)],
    "blue": [(40, 100, 200), (130, 170, 220), (80, 110, 160), (40, 60, 230)],
    "navy": [(30, 40, 80)],
    "purple": [(120, 60, 150), (180, 140, 200)],
    "pink": [(240, 150, 180), (220, 60, 130)],
    "brown": [(120, 75, 45), (165, 115, 75), (90, 65, 55), (150, 122, 105)],
    "beige": [(220, 200, 165), (195, 180, 150)],
}
COLOUR_WORDS = tuple(REFERENCE_COLOURS)

REFERENCE_NAMES = [name for name, colours in REFERENCE_COLOURS.items() for _ in colours]
REFERENCE_LAB = srgb_to_lab(np.array([colour for colours in REFERENCE_COLOURS.values() for colour in colours]))
NAMED_LAB = {name: srgb_to_lab(np.array(colours)) for name, colours in REFERENCE_COLOURS.items()}


def colour_name(lab: np.ndarray) -> str:
    """The colour word whose reference point is nearest to one Lab colour."""
    weights = np.array([LIGHTNESS_WEIGHT, 1.0, 1.0])
    distances = np.linalg.norm((REFERENCE_LAB - np.asarray(lab)) * weights, axis=1)
    return REFERENCE_NAMES[int(np.argmin(distances))]


def distance_to_colour(name: str, lab: np.ndarray) -> float:
    """CIELAB ΔE from one Lab colour to the nearest reference point of a colour word: a light grey is near
    "grey" because of the light grey point, whatever the dark one."""
    return float(np.linalg.norm(NAMED_LAB[name] - np.asarray(lab), axis=1).min())


def kmeans(points: np.ndarray, clusters: int) -> np.ndarray:
    """Cluster index of every point (N×3). Deterministic: the first centre is the point nearest the median,
    each next one the point farthest from the centres so far; then Lloyd iterations until nothing moves."""
    centres = [points[np.argmin(np.linalg.norm(points - np.median(points, axis=0), axis=1))]]
    nearest = np.linalg.norm(points - centres[0], axis=1)
    for _ in range(1, min(clusters, len(points))):
        if nearest.max() == 0:  # fewer distinct colours than clusters
            break
        centres.append(points[np.argmax(nearest)])
        nearest = np.minimum(nearest, np.linalg.norm(points - centres[-1], axis=1))
    centres = np.array(centres)
    assignment = None
    for _ in range(KMEANS_ITERATIONS):
        previous, assignment = assignment, np.argmin(((points[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
        if previous is not None and np.array_equal(previous, assignment):
            break
        sizes = np.bincount(assignment, minlength=len(centres))
        sums = np.stack([np.bincount(assignment, points[:, axis], len(centres)) for axis in range(3)], axis=1)
        # A centre that lost all its points stays where it is.
        centres = np.where(sizes[:, None] > 0, sums / np.maximum(sizes, 1)[:, None], centres)
    return assignment


def chromaticity(lab: np.ndarray) -> np.ndarray:
    """(a*, b*) / (L* + 16): unchanged when the light on a surface is scaled (see the module's step 4)."""
    return lab[1:] / max(lab[0] + 16, 1e-6)


def could_be_shadow(darker: np.ndarray, lighter: np.ndarray) -> bool:
    chromaticity_gap = np.linalg.norm(chromaticity(darker) - chromaticity(lighter))
    lightness_ratio = (darker[0] + 16) / (lighter[0] + 16)
    return chromaticity_gap <= SHADOW_CHROMATICITY_TOLERANCE and lightness_ratio >= SHADOW_LIGHTNESS_RATIO


def garment_colour(photo_pixels: np.ndarray, garment_pixels: np.ndarray,
                   rng: np.random.Generator) -> tuple[str, list[int]]:
    """(colour word, representative [r, g, b]) of a garment: photo_pixels is the photo as (H·W)×3 uint8,
    garment_pixels the flat indices of the garment's pixels (at least one)."""
    if len(garment_pixels) > MAX_SAMPLES:
        garment_pixels = rng.choice(garment_pixels, MAX_SAMPLES, replace=False)
    return dominant_colour(photo_pixels[garment_pixels])


def dominant_colour(rgb_pixels: np.ndarray) -> tuple[str, list[int]]:
    """(colour word, representative [r, g, b]) of N×3 uint8 pixels of one surface (N >= 1)."""
    lab = srgb_to_lab(rgb_pixels)
    assignment = kmeans(lab, KMEANS_CLUSTERS)
    members = [np.flatnonzero(assignment == index) for index in range(assignment.max() + 1)]
    members = sorted((indices for indices in members if len(indices)), key=lambda indices: -lab[indices, 0].mean())
    centres = [lab[indices].mean(axis=0) for indices in members]
    # Lightest first, so every group starts at its lit part and darker clusters join as its shadows.
    groups: list[list[int]] = []
    for cluster, centre in enumerate(centres):
        home = next((group for group in groups if could_be_shadow(centre, centres[group[0]])), None)
        if home is None:
            groups.append([cluster])
        else:
            home.append(cluster)
    heaviest = max(groups, key=lambda group: sum(len(members[cluster]) for cluster in group))
    needed, lit_pixels = LIT_SHARE * sum(len(members[cluster]) for cluster in heaviest), 0
    for cluster in heaviest:
        lit_pixels += len(members[cluster])
        if lit_pixels >= needed:
            break
    representative = np.median(rgb_pixels[members[cluster]], axis=0)
    return colour_name(centres[cluster]), [int(round(channel)) for channel in representative]
