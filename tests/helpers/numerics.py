"""References that the CPU's convolution kernels cannot bend.

On some CPUs (AMD EPYC seen) PyTorch's oneDNN fp32 convolution backward for a batch of more than one image is off by
~2% of the gradient's scale, while one image at a time agrees with float64 to ~1e-7
(``python -m mflag_monai.utils.numerics`` measures a machine). A test that compares two numerical paths with
different batch shapes (a single pass against micro-batches) would then compare against a wrong reference. Such
tests run their reference and the path under test with oneDNN off, where fp32 convolutions agree with float64 at
every batch size; the tolerances are stated against that.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["exact_cpu_kernels"]


@contextmanager
def exact_cpu_kernels() -> Iterator[None]:
    """oneDNN (mkldnn) off for the block: PyTorch's native fp32 kernels, accurate at any batch size."""
    with torch.backends.mkldnn.flags(enabled=False):
        yield
