"""The random part of the pre-training augmentation, on a whole batch on the training device (``augment_on: device``).

Per sample on the CPU, the chain of :func:`~mflag_monai.transforms.cxr_pretrain_augmentation` costs ~9 ms per 224-px
image and core, far from what a GPU trains at. Here the data loader only reads the cached uint8 image, crops and
collates; :class:`CXRBatchAugmentation` then runs rotation, perspective, autocontrast, normalisation and the
channel repeat on the batch, with per-sample random parameters drawn from the same distributions as the CPU chain.

Written on ``torch.nn.functional.grid_sample`` rather than a batched-augmentation library: the parameters must be
drawn exactly as the CPU chain draws them (MONAI's rotation about the image centre, torchvision's integer corner
displacements for the perspective) for the two modes to train on the same distribution, and rotation and perspective
compose into one projective map per sample, so each image is resampled once (the CPU chain resamples twice).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from monai.data import MetaTensor

from ..utils.errors import InputError

__all__ = ["AugmentParams", "CXRBatchAugmentation"]

AugmentParams = dict[str, torch.Tensor]


def _translate(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """``[B, 3, 3]`` translations by ``(tx, ty)``."""
    m = torch.eye(3, dtype=tx.dtype).repeat(len(tx), 1, 1)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _homographies(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """``[B, 3, 3]`` projective maps taking the four points ``src[b]`` (``[B, 4, 2]``) onto ``dst[b]``."""
    x, y = src[..., 0], src[..., 1]
    u, v = dst[..., 0], dst[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], dim=-1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], dim=-1)
    a = torch.cat([rows_u, rows_v], dim=1)  # [B, 8, 8]
    b = torch.cat([u, v], dim=1)  # [B, 8]
    h = torch.linalg.solve(a, b)
    return torch.cat([h, torch.ones_like(h[:, :1])], dim=1).view(-1, 3, 3)


def _sample_points(maps: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[B, H, W, 2]``: where the projective ``maps`` (``[B, 3, 3]``) send each output pixel index ``(x, y, 1)``.

    Each homogeneous coordinate ``m0·x + m1·y + m2`` is the sum of a per-column and a per-row term, so it is built
    by broadcasting (one pass over the batch) instead of a matrix product with an inner size of 3, which is slow.
    """
    xs = torch.arange(width, device=maps.device, dtype=maps.dtype).view(1, 1, width)
    ys = torch.arange(height, device=maps.device, dtype=maps.dtype).view(1, height, 1)
    m = maps.view(-1, 9, 1, 1)
    u, v, z = ((m[:, 3 * r] * xs) + (m[:, 3 * r + 1] * ys + m[:, 3 * r + 2]) for r in range(3))
    points = torch.empty(len(maps), height, width, 2, device=maps.device, dtype=maps.dtype)
    torch.div(u, z, out=points[..., 0])  # written in place: stacking on the last dimension is slow on CPU
    torch.div(v, z, out=points[..., 1])
    return points


class CXRBatchAugmentation:
    """Random rotation, perspective and autocontrast, then normalisation, of a ``[B, 1, H, W]`` batch on its device.

    The same distributions as :func:`~mflag_monai.transforms.cxr_pretrain_augmentation` (docs/method.md#augmentations),
    per sample: rotation by an angle uniform in ``[min_rotation_deg, max_rotation_deg]`` about the image centre,
    counter-clockwise as displayed for a positive angle (torchvision's convention; bilinear, zero padding); with
    probability ``perspective_prob`` the four corners moved inwards by
    integers uniform in ``[0, distortion × half the side]`` (torchvision's ``RandomPerspective`` draw, zero fill); with
    probability ``autocontrast_prob`` the image's min..max stretched to 0..1; then ``(x − 0.5) / 0.5`` and ``channels``
    copies of the grey channel. Rotation and perspective are one warp, so an image is interpolated once.

    Parameters are drawn on the CPU from this object's own generator (seeded by ``seed``, plus the process rank
    under ``torch.distributed`` so that GPUs draw differently), so a seed gives the same augmentation on any device.
    Call it under ``torch.no_grad()``; it is not meant to be differentiated.

    Args:
        max_rotation_deg, min_rotation_deg: the rotation range, degrees.
        perspective_distortion, perspective_prob: the perspective warp's strength and probability.
        autocontrast_prob: probability of the min-max stretch.
        channels: channels of the output (the grey channel repeated).
        seed: seed of the parameter generator; ``None`` draws one from torch's global generator at first use.
    """

    def __init__(
        self,
        max_rotation_deg: float = 90.0,
        perspective_distortion: float = 0.5,
        perspective_prob: float = 0.5,
        autocontrast_prob: float = 0.5,
        channels: int = 3,
        seed: int | None = None,
        min_rotation_deg: float = 0.0,
    ) -> None:
        if min_rotation_deg > max_rotation_deg:
            raise InputError(
                f"min_rotation_deg {min_rotation_deg} is above max_rotation_deg {max_rotation_deg}",
                "--min_rotation_deg",
            )
        self.min_rotation = math.radians(min_rotation_deg)
        self.max_rotation = math.radians(max_rotation_deg)
        self.distortion = perspective_distortion
        self.perspective_prob = perspective_prob
        self.autocontrast_prob = autocontrast_prob
        self.channels = channels
        self.seed = seed
        self._generator: torch.Generator | None = None

    def set_random_state(self, seed: int) -> CXRBatchAugmentation:
        """Restart the parameter generator from ``seed`` (no rank offset: for tests and benchmarks)."""
        self._generator = torch.Generator().manual_seed(int(seed))
        return self

    @property
    def generator(self) -> torch.Generator:
        """The CPU generator the parameters are drawn from, created at first use."""
        if self._generator is None:
            seed = self.seed if self.seed is not None else int(torch.randint(0, 2**31 - 1, (1,)))
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
            self._generator = torch.Generator().manual_seed(int(seed) + rank)
        return self._generator

    def sample_parameters(self, batch: int, height: int, width: int) -> AugmentParams:
        """Draw the random parameters of ``batch`` images of ``height × width``.

        Returns ``angle`` (radians, ``[B]``), ``perspective`` and ``autocontrast`` (bool ``[B]``) and
        ``endpoints`` (``[B, 4, 2]`` integer ``(x, y)`` corners, top-left, top-right, bottom-right, bottom-left, in
        torchvision's convention; the unmoved corners where ``perspective`` is false).
        """
        g = self.generator
        span = self.max_rotation - self.min_rotation
        angle = self.min_rotation + torch.rand(batch, generator=g, dtype=torch.float64) * span
        perspective = torch.rand(batch, generator=g) < self.perspective_prob
        dx, dy = int(self.distortion * (width // 2)), int(self.distortion * (height // 2))
        shift_x = torch.randint(0, dx + 1, (batch, 4), generator=g)
        shift_y = torch.randint(0, dy + 1, (batch, 4), generator=g)
        autocontrast = torch.rand(batch, generator=g) < self.autocontrast_prob
        start = self.corners(batch, height, width)
        inward = torch.tensor([[1, 1], [-1, 1], [-1, -1], [1, -1]])  # direction "inwards" of each corner
        moved = start + inward * torch.stack([shift_x, shift_y], dim=-1)
        endpoints = torch.where(perspective[:, None, None], moved, start)
        return {"angle": angle, "perspective": perspective, "endpoints": endpoints, "autocontrast": autocontrast}

    @staticmethod
    def corners(batch: int, height: int, width: int) -> torch.Tensor:
        """The unmoved corners ``[B, 4, 2]`` as torchvision's perspective takes them."""
        return torch.tensor([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]]).repeat(batch, 1, 1)

    def warp_matrices(self, params: AugmentParams, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, 3, 3]`` maps of output pixel indices ``(x, y, 1)``: to ``grid_sample``'s normalised input coordinates
        (rotation after perspective), and to the rotated image's pixel indices (where the perspective samples, for
        its zero fill outside the frame)."""
        b = len(params["angle"])
        # perspective (torchvision): pixel centres at index + 0.5; the output's endpoints map onto the input's corners
        start = self.corners(b, height, width).double()
        persp = _homographies(params["endpoints"].double(), start)
        half = torch.full((b,), 0.5, dtype=torch.float64)
        persp = _translate(-half, -half) @ persp @ _translate(half, half)  # indices -> indices
        # rotation about the centre, counter-clockwise as displayed (rows run down): output index -> input index is
        # a turn by +angle in these coordinates
        cos, sin = torch.cos(params["angle"]), -torch.sin(params["angle"])
        rot = torch.zeros(b, 3, 3, dtype=torch.float64)
        rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = cos, sin, -sin, cos, 1.0
        cx, cy = (
            torch.full((b,), (width - 1) / 2, dtype=torch.float64),
            torch.full((b,), (height - 1) / 2, dtype=torch.float64),
        )
        rot = _translate(cx, cy) @ rot @ _translate(-cx, -cy)
        # indices -> grid_sample's [-1, 1] with align_corners=False
        norm = torch.zeros(b, 3, 3, dtype=torch.float64)
        norm[:, 0, 0], norm[:, 0, 2] = 2.0 / width, 1.0 / width - 1.0
        norm[:, 1, 1], norm[:, 1, 2] = 2.0 / height, 1.0 / height - 1.0
        norm[:, 2, 2] = 1.0
        return norm @ rot @ persp, persp

    def apply(self, images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Augment ``images`` (``[B, 1, H, W]``, uint8 in 0..255 or float in [0, 1]) with the given parameters;
        returns float32 ``[B, channels, H, W]`` in [−1, 1] on the images' device."""
        if isinstance(images, MetaTensor):
            images = images.as_tensor()
        b, _, h, w = images.shape
        device = images.device
        # warped in the input's scale (0..255 for uint8): the warp is linear and zero-filled, so the division by 255
        # folds into the final per-sample scale and shift below, saving a pass over the batch
        unit = 255.0 if images.dtype == torch.uint8 else 1.0
        x = images.float()
        to_grid, to_rotated = (m.to(device, torch.float32) for m in self.warp_matrices(params, h, w))
        grid = _sample_points(to_grid, h, w)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        # zero fill where the perspective samples outside the rotated frame (a bilinear ones-image over that frame,
        # as torchvision fills); without perspective every sample lies inside
        warped = params["perspective"].nonzero().flatten().tolist()
        if warped:
            q = _sample_points(to_rotated[warped], h, w)
            fx = torch.clamp(torch.minimum(q[..., 0] + 1.0, w - q[..., 0]), 0.0, 1.0)
            fy = torch.clamp(torch.minimum(q[..., 1] + 1.0, h - q[..., 1]), 0.0, 1.0)
            x[warped] *= (fx * fy).unsqueeze(1)
        # autocontrast (each image's min..max to 0..1; a constant image to 0, as MONAI's ScaleIntensity), then
        # (y - 0.5) / 0.5: one scale and shift per sample
        lo, hi = torch.aminmax(x.flatten(1), dim=1)
        span = hi - lo
        stretch = params["autocontrast"].to(device)
        inv = torch.where(span > 0, 1.0 / span.clamp_min(torch.finfo(x.dtype).tiny), torch.zeros_like(span))
        scale = torch.where(stretch, 2.0 * inv, torch.full_like(span, 2.0 / unit))
        shift = torch.where(stretch, -2.0 * lo * inv - 1.0, torch.full_like(span, -1.0))
        x = torch.addcmul(shift.view(b, 1, 1, 1), x, scale.view(b, 1, 1, 1))
        return x.repeat(1, self.channels, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Draw parameters for the batch and augment it (see :meth:`apply`)."""
        b, _, h, w = images.shape
        return self.apply(images, self.sample_parameters(b, h, w))
