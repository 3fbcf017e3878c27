"""The frontal radiograph: :func:`render_chest_xray` draws one patient in stages (anatomy, tissues, lung density,
pneumothorax, lesions, composite, effusion, ribs and clavicles, support devices, detector), each drawing from the
generator in turn, so that the same generator state gives the same image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .findings import (
    DEVICES,
    SIDES,
    SIZES,
    ZONES,
    ChestPhantom,
    Consolidation,
    Nodule,
    PhantomFindings,
    check_choice,
    sides_of,
)
from .ops import F32, blur, curve_line, erode, smoothstep, soft_inside, value_noise

__all__ = ["render_chest_xray"]


@dataclass
class _Lung:
    """Geometry of one lung in normalised coordinates."""

    side: str
    cx: float  # centre of the bounding ellipse
    cy: float
    a: float  # horizontal semi-axis (at the widest level)
    b: float  # vertical semi-axis
    lateral: float  # -1 if the lateral wall is towards u=0 (right lung), +1 otherwise

    def dist(
        self,
        u: np.ndarray,
        v: np.ndarray,
        scale: float = 1.0,
        dx: float = 0.0,
        dy: float = 0.0,
        scale_x: float | None = None,
    ) -> np.ndarray:
        """Normalised distance (<1 inside) of an apex-narrow, base-wide lung outline.

        ``scale``/``scale_x`` shrink the outline and ``dx``/``dy`` move it: this draws the
        collapsed lung of a pneumothorax with the same shape.
        """
        cx, cy = self.cx + dx, self.cy + dy
        a, b = self.a * (scale if scale_x is None else scale_x), self.b * scale
        t = np.clip((v - (cy - b)) / (2 * b), 0.0, 1.0)  # 0 at apex, 1 at base
        a_eff = a * (0.62 + 0.45 * np.sqrt(t))  # rounded narrow apex, wide base
        return (((u - cx) / a_eff) ** 2 + ((v - cy) / b) ** 2).astype(F32)


@dataclass
class _Anatomy:
    """One patient's geometry on the detector: body coordinates, lungs, heart and hemidiaphragms."""

    h: int
    w: int
    s: float  # body size
    u: np.ndarray  # normalised body coordinates of every pixel
    v: np.ndarray
    px: float  # one pixel in normalised units
    mid: float  # midline
    top: float  # vertical offset of the thorax
    lungs: list[_Lung]  # right, left
    ctr: float  # cardiothoracic ratio
    heart_cx: float
    heart_cy: float
    heart_hw: float
    heart_hh: float
    dia: np.ndarray  # the hemidiaphragm domes' height per column
    below: np.ndarray  # 1 under the diaphragm


@dataclass
class _Tissues:
    """Soft memberships of the body, the organs in front of the lungs and the lungs themselves."""

    body: np.ndarray
    soft_tissue: np.ndarray  # density of the chest wall and abdomen
    heart: np.ndarray
    mediastinum: np.ndarray
    lung_d: list[np.ndarray]  # each lung's outline distance (<1 inside)
    lung_in: list[np.ndarray]  # each lung's membership, the pleural space under the domes
    pleural: np.ndarray  # the whole pleural space of both lungs
    visible: np.ndarray  # lung not hidden by the mediastinum or the heart


def render_chest_xray(
    height: int,
    width: int | None = None,
    *,
    rng: np.random.Generator | int | None = None,
    cardiomegaly: bool = False,
    effusion: str | Sequence[str] | None = None,
    effusion_size: str = "moderate",
    consolidation: int | Sequence[str | tuple[str, str]] = 0,
    nodule: int | Sequence[str | tuple[str, str]] = 0,
    pneumothorax: str | Sequence[str] | None = None,
    pneumothorax_size: str = "moderate",
    support_devices: bool | Sequence[str] = False,
    projection: str = "PA",
) -> ChestPhantom:
    """Render one frontal chest radiograph with the requested findings.

    The image is drawn in stages, each drawing from ``rng`` in turn: anatomy, tissues, lung density, pneumothorax,
    lesions (consolidations, nodules), the composite of the organs, effusion, ribs and clavicles, support devices,
    detector.

    Args:
        height: image rows.
        width: image columns (default ``height``).
        rng: a ``np.random.Generator`` or a seed; every random choice (anatomy, positions,
            noise) is drawn from it, so the same generator state gives the same image.
        cardiomegaly: draw an enlarged heart (cardiothoracic ratio 0.55-0.65 instead of ~0.4).
        effusion: pleural effusion side(s): ``"right"``, ``"left"``, ``"both"`` or a sequence.
        effusion_size: ``"small"`` (costophrenic angle blunted), ``"moderate"`` or ``"large"``.
        consolidation: number of focal opacities (sides drawn at random, at most one per lung
            unless more are asked), or a sequence of sides or ``(side, zone)`` pairs with
            zone in ``ZONES``. Size (a few lobules of 2.5-6.5% of the image), density and patchiness vary.
        nodule: number of small round opacities (10-26 mm), or their sides / ``(side, zone)`` pairs.
        pneumothorax: side(s) of an apical/lateral pneumothorax; one region per side.
        pneumothorax_size: ``"small"``, ``"moderate"`` or ``"large"`` (how far the lung collapsed).
        support_devices: ``True`` for one or two random devices, or names from ``DEVICES``.
        projection: ``"PA"`` or ``"AP"``; AP draws a slightly larger heart and higher diaphragm,
            as a supine portable film does.

    Returns:
        A :class:`ChestPhantom` with the image and its ground truth.
    """
    width = height if width is None else width
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    check_choice(effusion_size, SIZES, "effusion_size")
    check_choice(pneumothorax_size, SIZES, "pneumothorax_size")
    check_choice(projection, ("PA", "AP"), "projection")
    eff_sides, ptx_sides = sides_of(effusion), sides_of(pneumothorax)
    h, w = height, width

    anatomy = _draw_anatomy(rng, h, w, cardiomegaly, projection)
    tissues = _draw_tissues(rng, anatomy)
    lung_level, lung_map = _draw_lung_density(rng, anatomy)
    lung_map, ptx_regions, ptx_soft = _draw_pneumothorax(
        rng, anatomy, tissues, ptx_sides, pneumothorax_size, lung_level, lung_map
    )
    opacity, consolidations, nodules = _draw_lesions(rng, anatomy, tissues, ptx_soft, consolidation, nodule)
    lung_map = lung_map + opacity
    img = _composite(anatomy, tissues, lung_map)
    img = _draw_effusion(rng, anatomy, tissues, img, eff_sides, effusion_size)
    img = _draw_ribs_and_clavicles(rng, anatomy, img)
    img, devices = _draw_support_devices(rng, anatomy, img, support_devices)
    image = _detector(rng, img, h, w)

    lung_mask = np.zeros((h, w), dtype=np.uint8)
    for label, inside in ((1, tissues.lung_in[0]), (2, tissues.lung_in[1])):
        lung_mask[(inside > 0.5) & (tissues.visible > 0.5)] = label
    ptx_mask = np.zeros((h, w), dtype=np.uint8)
    for region in ptx_regions:
        ptx_mask |= region
    findings = PhantomFindings(
        cardiomegaly=bool(cardiomegaly),
        effusion=eff_sides,
        effusion_size=effusion_size,
        consolidations=consolidations,
        nodules=nodules,
        pneumothorax=ptx_sides,
        pneumothorax_size=pneumothorax_size,
        support_devices=devices,
    )
    return ChestPhantom(
        image=image,
        boxes=[c.box for c in consolidations],
        pneumothorax_mask=ptx_mask,
        pneumothorax_regions=ptx_regions,
        lung_mask=lung_mask,
        heart_mask=(tissues.heart > 0.5).astype(np.uint8),
        ctr=anatomy.ctr,
        findings=findings,
    )


def _draw_anatomy(rng: np.random.Generator, h: int, w: int, cardiomegaly: bool, projection: str) -> _Anatomy:
    """The patient's position, lungs, heart and hemidiaphragms."""
    # Patient positioning varies: the anatomy is drawn in body coordinates (u, v) that are
    # rotated (+-6 degrees), shifted and scaled against the detector, so that masks and boxes,
    # computed from the same grids, follow the patient.
    s = float(rng.uniform(0.86, 1.06))
    u, v = _body_coordinates(h, w, rng)
    px = 1.0 / min(h, w)  # one pixel in normalised units: soft edges of ~1-2 px

    mid = 0.5 + float(rng.uniform(-0.03, 0.03))
    top = float(rng.uniform(-0.03, 0.03))
    lungs = []
    for side, lateral in (("right", -1.0), ("left", 1.0)):
        lungs.append(
            _Lung(
                side=side,
                cx=mid + lateral * 0.185 * s * float(rng.uniform(0.97, 1.03)),
                cy=0.5 + top + float(rng.uniform(-0.01, 0.01)),
                a=0.16 * s * float(rng.uniform(0.93, 1.05)),
                b=0.37 * s * float(rng.uniform(0.95, 1.04)),
                lateral=lateral,
            )
        )
    right, left = lungs
    if projection == "AP":
        for lung in lungs:  # shallower inspiration on a portable film
            lung.b *= 0.94
    # Thoracic width: between the lateral walls at the widest level of the outlines.
    thoracic = (left.cx + left.a * 1.05) - (right.cx - right.a * 1.05)
    ctr = float(rng.uniform(0.52, 0.64) if cardiomegaly else rng.uniform(0.37, 0.47))
    if projection == "AP" and not cardiomegaly:
        ctr = min(ctr + 0.03, 0.48)  # AP magnifies the heart, still within normal
    heart_hw = ctr * thoracic / 2
    heart_cx = mid + heart_hw * 0.3  # one third right of midline, two thirds left
    heart_cy = right.cy + 0.12 * s
    heart_hh = 0.105 * s + 0.3 * (heart_hw - 0.075 * s)

    # Hemidiaphragm domes (the right one a little higher: the liver); the lung outlines are
    # still wide where the domes cut them, which draws sharp costophrenic angles.
    dia = np.empty((h, w), dtype=F32)
    for lung, lift in ((right, 0.02), (left, 0.0)):
        base = lung.cy + lung.b * 0.76 - lift
        reach = np.clip(((u - lung.cx) / (1.1 * lung.a)) ** 2, 0, 1)
        dome = base - 0.1 * s * (1 - reach)
        dia = np.where((u < mid) if lung is right else (u >= mid), dome, dia).astype(F32)
    below = smoothstep((v - dia) / (3 * px) + 0.5)  # 1 under the diaphragm
    return _Anatomy(
        h=h, w=w, s=s, u=u, v=v, px=px, mid=mid, top=top, lungs=lungs, ctr=ctr, heart_cx=heart_cx,
        heart_cy=heart_cy, heart_hw=heart_hw, heart_hh=heart_hh, dia=dia, below=below,
    )  # fmt: skip


def _draw_tissues(rng: np.random.Generator, a: _Anatomy) -> _Tissues:
    """Body, soft tissue, mediastinum, heart and lungs (memberships)."""
    u, v, s, mid, top, px = a.u, a.v, a.s, a.mid, a.top, a.px
    body = soft_inside(((u - mid) / (0.47 * s)) ** 4 + ((v - 0.62 - top) / 0.66) ** 4, 0.04)
    lat = np.abs(u - mid) / (0.47 * s)
    habitus = float(rng.uniform(-0.06, 0.06))  # thin to heavy patients: denser soft tissue
    soft_tissue = 0.40 + habitus + 0.12 * smoothstep((lat - 0.7) / 0.3) + 0.06 * value_noise(rng, a.h, a.w, 4)
    heart = soft_inside(
        ((u - a.heart_cx) / a.heart_hw) ** 2 + ((v - a.heart_cy) / a.heart_hh) ** 2, 2 * px / a.heart_hw
    )
    med_hw = 0.05 * s + 0.02 * s * smoothstep((v - 0.18 - top) / 0.2)  # widens towards the heart
    mediastinum = smoothstep((med_hw - np.abs(u - mid)) / (2 * px) + 0.5) * (1 - a.below)
    knob = ((u - mid - 0.055 * s) / (0.035 * s)) ** 2 + ((v - 0.3 - top) / (0.035 * s)) ** 2
    mediastinum = np.maximum(mediastinum, soft_inside(knob, 0.2))  # aortic knob
    lung_d = [lung.dist(u, v) for lung in a.lungs]
    lung_in = [soft_inside(d, 0.06) * (1 - a.below) for d in lung_d]
    pleural = np.maximum(lung_in[0], lung_in[1])  # the whole pleural space of both lungs
    # Lungs visible where neither the mediastinum nor the heart lies in front.
    visible = pleural * (1 - mediastinum) * (1 - heart)
    return _Tissues(
        body=body, soft_tissue=soft_tissue, heart=heart, mediastinum=mediastinum, lung_d=lung_d, lung_in=lung_in,
        pleural=pleural, visible=visible,
    )  # fmt: skip


def _draw_lung_density(rng: np.random.Generator, a: _Anatomy) -> tuple[float, np.ndarray]:
    """``(air level, lung density)``: dark air with vessel markings fanning out from the hila."""
    u, v = a.u, a.v
    lung_level = float(rng.uniform(0.12, 0.26))  # inspiration depth and exposure
    n = value_noise(rng, a.h, a.w, 12) * 0.65 + value_noise(rng, a.h, a.w, 26) * 0.35
    ridges = (1 - np.abs(2 * n - 1)) ** 8  # thin bright lines where the noise crosses 0.5
    markings = np.zeros((a.h, a.w), dtype=F32)
    for lung in a.lungs:
        hx, hy = lung.cx - lung.lateral * 0.45 * lung.a, lung.cy + 0.05
        r = np.sqrt(((u - hx) / lung.a) ** 2 + ((v - hy) / lung.b) ** 2)
        markings += np.exp(-r * 1.6) * (0.7 + 0.6 * ridges) * 0.16 + np.exp(-((r / 0.25) ** 2)) * 0.12
    return lung_level, lung_level + markings


def _draw_pneumothorax(
    rng: np.random.Generator,
    a: _Anatomy,
    t: _Tissues,
    sides: tuple[str, ...],
    size: str,
    lung_level: float,
    lung_map: np.ndarray,
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """The lung collapses towards the hilum, leaving air at apex and wall: ``(lung density, regions, soft air)``."""
    u, v, h, w = a.u, a.v, a.h, a.w
    size_k = {"small": 0.84, "moderate": 0.72, "large": 0.58}[size]
    ptx_regions: list[np.ndarray] = []
    ptx_soft = np.zeros((h, w), dtype=F32)
    pleural_line = np.zeros((h, w), dtype=F32)
    for lung, inside in zip(a.lungs, t.lung_in):
        if lung.side not in sides:
            continue
        k = size_k * float(rng.uniform(0.97, 1.03))
        kx = 0.5 + 0.5 * k  # collapse more from the apex than from the side
        # Anchor the collapsed outline at the base and the medial border.
        dx = -lung.lateral * lung.a * (1 - kx)
        dy = lung.b * (1 - k)
        collapsed = lung.dist(u, v, scale=k, scale_x=kx, dx=dx, dy=dy)
        gap = smoothstep((collapsed - 1) / 0.08 + 0.5) * inside * t.visible.astype(bool)
        region = (gap > 0.5) & (inside > 0.5) & (t.visible > 0.5)
        ptx_regions.append(region.astype(np.uint8))
        ptx_soft = np.maximum(ptx_soft, gap)
        # Visceral pleural line: a thin bright edge along the collapsed lung, in the lung.
        ring = np.exp(-(((collapsed - 1) / 0.06) ** 2)) * inside * (v < a.dia - 0.03)
        pleural_line = np.maximum(pleural_line, ring.astype(F32))
    if ptx_regions:
        # Air without markings, darker than the aerated lung; the collapsed lung denser.
        lung_map = lung_map * (1 - ptx_soft) + (lung_level - 0.09) * ptx_soft
        lung_map = lung_map + 0.03 * (1 - ptx_soft) * t.pleural.astype(bool)
        line_contrast = float(rng.uniform(0.07, 0.16))  # a faint line is the usual miss
        lung_map = np.maximum(lung_map, lung_map + line_contrast * pleural_line * (1 - ptx_soft * 0.3))
    return lung_map, ptx_regions, ptx_soft


def _draw_lesions(
    rng: np.random.Generator,
    a: _Anatomy,
    t: _Tissues,
    ptx_soft: np.ndarray,
    consolidation: int | Sequence[str | tuple[str, str]],
    nodule: int | Sequence[str | tuple[str, str]],
) -> tuple[np.ndarray, list[Consolidation], list[Nodule]]:
    """Consolidations (lobulated focal opacities) and nodules (small round ones): ``(opacity, ...)``."""
    u, v, s, h, w = a.u, a.v, a.s, a.h, a.w
    cons_specs = _lesion_specs(rng, consolidation, "consolidation")
    opacity = np.zeros((h, w), dtype=F32)
    consolidations: list[Consolidation] = []
    # Opacities grow in aerated lung: safely inside the outline, not in a pneumothorax.
    aerated = (t.visible > 0.5) & (ptx_soft == 0)
    lung_lab = [aerated & (d < 0.72) for d in t.lung_d]
    for side, zone in cons_specs:
        i = SIDES.index(side)
        # Size, density and texture vary, from a faint ground-glass patch to a dense lobar opacity.
        sig = float(rng.uniform(0.025, 0.065)) * s
        bx, by, zone = _lesion_centre(rng, a.lungs[i], lung_lab[i], aerated | (t.visible > 0), zone, sig * 0.8, u, v)
        blob = np.zeros((h, w), dtype=F32)
        for _ in range(int(rng.integers(3, 6))):  # a few lobules around the centre
            ox, oy = rng.normal(0, sig * 0.6, size=2)
            sx, sy = sig * rng.uniform(0.6, 1.1, size=2)
            blob += np.exp(-(((u - bx - ox) / sx) ** 2 + ((v - by - oy) / sy) ** 2) / 2)
        blob = np.clip(blob / max(float(blob.max()), 1e-6), 0, 1)
        blob *= t.lung_in[i] * (1 - t.mediastinum) * (1 - t.heart) * (1 - ptx_soft)
        patchiness = float(rng.uniform(0.15, 0.5))  # air bronchograms / mottling
        mottle = 1 - patchiness + patchiness * value_noise(rng, h, w, 40)
        opacity = np.maximum(opacity, blob * mottle * float(rng.uniform(0.14, 0.38)))
        consolidations.append(Consolidation(side=side, zone=zone, box=_box(blob)))
    # Nodules: small round well-defined opacities (10-26 mm on a 43 cm field).
    nodules: list[Nodule] = []
    for side, zone in _lesion_specs(rng, nodule, "nodule"):
        i = SIDES.index(side)
        radius = float(rng.uniform(0.011, 0.03)) * s
        bx, by, zone = _lesion_centre(rng, a.lungs[i], lung_lab[i], aerated | (t.visible > 0), zone, radius, u, v)
        blob = soft_inside(((u - bx) ** 2 + (v - by) ** 2) / radius**2, 0.6) * t.lung_in[i] * (1 - t.heart)
        opacity = np.maximum(opacity, blob * float(rng.uniform(0.14, 0.3)))
        diameter_mm = int(round(2 * radius * 430 / 5)) * 5 or 5  # reported to the nearest 5 mm, as radiologists do
        nodules.append(Nodule(side=side, zone=zone, box=_box(blob), diameter_mm=diameter_mm))
    return opacity, consolidations, nodules


def _composite(a: _Anatomy, t: _Tissues, lung_map: np.ndarray) -> np.ndarray:
    """Air, soft tissue, abdomen, lungs, mediastinum + spine, heart (no random draw)."""
    u, v, s, mid, top, px = a.u, a.v, a.s, a.mid, a.top, a.px
    img = 0.03 + (t.soft_tissue - 0.03) * t.body
    img = img + 0.16 * a.below * t.body
    img = img * (1 - t.visible) + lung_map * t.visible
    spine = 0.62 + 0.035 * np.cos(2 * np.pi * (v - top) / (0.045 * s))  # vertebral bodies
    trachea = smoothstep((0.014 * s - np.abs(u - mid)) / (2 * px) + 0.5) * (v < 0.33 + top) * (v > 0.02)
    img = img * (1 - t.mediastinum) + (spine - 0.25 * trachea) * t.mediastinum
    return img * (1 - t.heart) + (0.66 + 0.04 * (spine - 0.62)) * t.heart


def _draw_effusion(
    rng: np.random.Generator, a: _Anatomy, t: _Tissues, img: np.ndarray, sides: tuple[str, ...], size: str
) -> np.ndarray:
    """Pleural effusion: dependent fluid filling the costophrenic angle upwards, its meniscus rising towards the
    chest wall; as dense as the diaphragm (silhouette sign)."""
    u, v, s = a.u, a.v, a.s
    eff_h = {"small": 0.1, "moderate": 0.2, "large": 0.36}[size]
    for lung, inside in zip(a.lungs, t.lung_in):
        if lung.side not in sides:
            continue
        level = lung.cy + lung.b * (0.76 - 2 * eff_h) + float(rng.uniform(-0.01, 0.01))
        towards_wall = np.clip((u - lung.cx) * lung.lateral / lung.a + 0.3, 0, 1.3)
        meniscus = level - 0.07 * s * towards_wall**2
        fluid = smoothstep((v - meniscus) / 0.04) * inside * (1 - t.heart)
        img = img * (1 - fluid) + 0.6 * fluid
    return img


def _draw_ribs_and_clavicles(rng: np.random.Generator, a: _Anatomy, img: np.ndarray) -> np.ndarray:
    """Ribs (posterior arcs curving down laterally) and clavicles, over everything."""
    u, v, s, mid, top = a.u, a.v, a.s, a.mid, a.top
    period = 0.068 * s * float(rng.uniform(0.95, 1.05))
    phase = (v - top - 0.9 * (u - mid) ** 2) / period + float(rng.uniform(0, 1))
    rib = np.clip((np.cos(2 * np.pi * phase) - 0.35) / 0.65, 0, 1)
    chest = soft_inside(((u - mid) / (0.45 * s)) ** 2 + ((v - 0.45 - top) / 0.4) ** 2, 0.1)
    img = img + 0.05 * rib * chest * (1 - a.below)
    for sign in (-1.0, 1.0):
        off = (u - mid) * sign
        clav_y = 0.13 + top + 0.1 * (off - 0.05)
        clav = np.exp(-(((v - clav_y) / (0.014 * s)) ** 2)) * ((off > 0.04) & (off < 0.33 * s))
        img = img + 0.12 * clav
    return img


def _draw_support_devices(
    rng: np.random.Generator, a: _Anatomy, img: np.ndarray, support_devices: bool | Sequence[str]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Thin radio-opaque tubes: ``(image, device names)``."""
    u, v, mid, top = a.u, a.v, a.mid, a.top
    devices = _device_names(rng, support_devices)
    tube = np.zeros((a.h, a.w), dtype=F32)
    if "ett" in devices:  # down the trachea, tip above the carina
        tip = 0.27 + top + float(rng.uniform(-0.03, 0.02))
        tube = np.maximum(tube, curve_line(u, v, np.full_like(v, mid + 0.003), 0.0, tip, 0.005))
    if "enteric" in devices:  # down the oesophagus, curving left into the stomach
        xs = mid + 0.012 + 0.12 * smoothstep((v - 0.68 - top) / 0.15)
        tube = np.maximum(tube, curve_line(u, v, xs, 0.0, 0.84 + top, 0.004))
    if "cvc" in devices:  # right internal jugular, down to the SVC
        xs = mid - 0.03 - 0.09 * (1 - smoothstep((v - 0.05) / 0.22))
        tube = np.maximum(tube, curve_line(u, v, xs, 0.02, 0.32 + top, 0.004))
    return img + 0.3 * tube, devices


def _detector(rng: np.random.Generator, img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Blur, quantum noise and a per-patient contrast curve; the image clipped to ``[0, 1]``."""
    img = blur(img.astype(F32), passes=2 if min(h, w) >= 256 else 1)
    # Exposure differs between rooms and patients: a tilt (anode heel), noise, contrast curve.
    heel = float(rng.uniform(-0.05, 0.05))
    img = img + heel * (np.arange(h, dtype=F32)[:, None] / h - 0.5)
    img = img + rng.normal(0, float(rng.uniform(0.006, 0.03)), size=(h, w)).astype(F32)
    gamma = float(rng.uniform(0.7, 1.4))
    lo, hi = float(rng.uniform(0.0, 0.08)), float(rng.uniform(0.85, 1.0))
    img = lo + (hi - lo) * np.clip(img, 0, 1) ** gamma
    return np.clip(img, 0, 1).astype(F32)


def _lesion_specs(
    rng: np.random.Generator, lesions: int | Sequence[str | tuple[str, str]], kind: str
) -> list[tuple[str, str]]:
    """Turn a ``consolidation`` or ``nodule`` argument into a list of (side, zone)."""
    if isinstance(lesions, (bool, int, np.integer)):
        count = int(lesions)
        # Different lungs first (as a bilateral pneumonia), then anywhere.
        order = list(rng.permutation(SIDES)) if count <= 2 else list(rng.choice(SIDES, size=count))
        items: list = [str(sd) for sd in order[:count]]
    else:
        items = list(lesions)
    # Pneumonia favours the bases; nodules are spread more evenly.
    zone_p = [0.25, 0.3, 0.45] if kind == "consolidation" else [0.35, 0.35, 0.3]
    specs = []
    for item in items:
        side, zone = (item, None) if isinstance(item, str) else item
        check_choice(side, SIDES, f"{kind} side")
        if zone is None:
            zone = str(rng.choice(ZONES, p=zone_p))
        specs.append((side, check_choice(zone, ZONES, f"{kind} zone")))
    return specs


def _lesion_centre(
    rng: np.random.Generator,
    lung: _Lung,
    lung_area: np.ndarray,
    fallback: np.ndarray,
    zone: str,
    radius: float,
    u: np.ndarray,
    v: np.ndarray,
) -> tuple[float, float, str]:
    """A lesion centre ``(u, v)`` in ``zone`` of ``lung``, about ``radius`` inside ``lung_area``; the zone it really got.

    Falls back to the zone's edge, the whole lung, then ``fallback`` when the zone is hidden (huge heart, collapsed
    lung), so a lesion is always drawn; the zone returned is where it lies, so that reports stay true.
    """
    h, w = lung_area.shape
    inner = erode(lung_area, int(radius * min(h, w)))
    apex, zone_h = lung.cy - lung.b, 1.76 * lung.b / 3  # thirds of the apex-to-dome height
    z0 = apex + zone_h * ZONES.index(zone)
    rows = (v >= z0 + 0.1 * zone_h) & (v <= z0 + 0.9 * zone_h)
    for candidates in (inner & rows, lung_area & rows, lung_area, fallback):
        idx = np.flatnonzero(candidates)
        if idx.size:
            break
    cy_px, cx_px = divmod(int(rng.choice(idx)), w)
    bx, by = float(u[cy_px, cx_px]), float(v[cy_px, cx_px])
    return bx, by, ZONES[int(np.clip((by - apex) // zone_h, 0, 2))]


def _box(blob: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box ``(x, y, width, height)`` in pixels of where ``blob`` exceeds 30% of its peak."""
    ys, xs = np.nonzero(blob > 0.3 * max(float(blob.max()), 1e-6))
    if ys.size == 0:  # fully hidden (behind the heart): a one-pixel box at the peak
        ys, xs = np.unravel_index(np.argmax(blob)[None], blob.shape)
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def _body_coordinates(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Normalised body coordinates ``(u, v)`` of every pixel, ``(h, w)`` each, for a randomly positioned patient.

    Rotation within +-6 degrees about the image centre, a shift of up to 3% and a magnification of 0.95-1.05:
    radiographers centre and collimate by eye.
    """
    angle = np.deg2rad(float(rng.uniform(-6.0, 6.0)))
    zoom = float(rng.uniform(0.95, 1.05))
    du, dv = (float(x) for x in rng.uniform(-0.03, 0.03, size=2))
    y = ((np.arange(h, dtype=F32) + 0.5) / h - 0.5)[:, None]
    x = ((np.arange(w, dtype=F32) + 0.5) / w - 0.5)[None, :]
    cos, sin = np.cos(angle), np.sin(angle)
    u = 0.5 + du + (cos * x - sin * y) / zoom
    v = 0.5 + dv + (sin * x + cos * y) / zoom
    return u.astype(F32), v.astype(F32)


def _device_names(rng: np.random.Generator, support_devices: bool | Sequence[str]) -> tuple[str, ...]:
    """Turn the ``support_devices`` argument into device names."""
    if support_devices is True:
        k = int(rng.integers(1, 3))
        return tuple(sorted(str(d) for d in rng.choice(DEVICES, size=k, replace=False)))
    if not support_devices:
        return ()
    return tuple(check_choice(d, DEVICES, "support device") for d in support_devices)
