"""A seeded, deterministic renderer of synthetic chest radiographs ("phantoms").

The demo data sets (:mod:`mflag_monai.data.demo`) are drawn with this module, so that
every label, box and mask in them is true of the pixels: a cardiomegaly study has a wide
heart, a consolidation box holds a bright opacity, a pneumothorax mask covers a dark
region without lung markings edged by a pleural line.

Conventions:
    * The image is ``float32`` in ``[0, 1]``, bright = dense (MONOCHROME2 "as viewed").
    * Frontal images are drawn as seen on a PA film: the patient's **right** lung is on
      the **image left**. Sides in arguments and findings are the patient's sides.
    * Geometry is defined in normalised coordinates (``u = x / width``, ``v = y / height``),
      so any image size works; boxes and masks are returned in pixels.

Only numpy is used; all randomness comes from the given ``np.random.Generator``.

Modules: :mod:`.findings` (what can be drawn, what rendering returns), :mod:`.frontal` (:func:`render_chest_xray` and
its stages), :mod:`.lateral` (:func:`render_lateral_xray`), :mod:`.ops` (pixel operations).
"""

from .findings import DEVICES, SIDES, SIZES, ZONES, ChestPhantom, Consolidation, Nodule, PhantomFindings
from .frontal import render_chest_xray
from .lateral import render_lateral_xray

__all__ = [
    "DEVICES",
    "SIDES",
    "SIZES",
    "ZONES",
    "ChestPhantom",
    "Consolidation",
    "Nodule",
    "PhantomFindings",
    "render_chest_xray",
    "render_lateral_xray",
]
