"""Where things are in a SynthHits frame: what the clip generators draw and the metrics look at.

Its own module so the metrics depend on the layout, not on the data generators.
"""

from typing import Tuple

SURFACE_FRACTION = 0.2  # share of the frame height taken by the surface


def surface_rows(height: int) -> Tuple[int, int]:
    """Rows ``[top, height)`` covered by the surface in a SynthHits frame of this height."""
    return height - max(2, int(round(SURFACE_FRACTION * height))), height
