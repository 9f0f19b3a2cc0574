"""Side-by-side comparison panels (LR / bicubic / RT4KSR / HR crops with PSNR labels) as one image."""
from typing import List, Sequence, Tuple

import cv2
import numpy as np

LABEL_HEIGHT = 22


def labelled(tile: np.ndarray, text: str) -> np.ndarray:
    """``tile`` (8-bit BGR) with a white strip below it holding ``text``."""
    strip = np.full((LABEL_HEIGHT, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, text, (3, LABEL_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([tile, strip], axis=0)


def comparison_row(crops: Sequence[Tuple[np.ndarray, str]], size: int, gap: int = 4) -> np.ndarray:
    """One row: each (8-bit BGR crop, label) resized to ``size`` x ``size`` (nearest, so pixels stay
    visible) and labelled; separated by white gaps."""
    panels: List[np.ndarray] = []
    for crop, text in crops:
        panels.append(labelled(cv2.resize(crop, (size, size), interpolation=cv2.INTER_NEAREST), text))
        panels.append(np.full((size + LABEL_HEIGHT, gap, 3), 255, np.uint8))
    return np.concatenate(panels[:-1], axis=1)


def stack_rows(rows: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    """Rows of equal width one above the other, separated by white gaps."""
    spacer = np.full((gap, rows[0].shape[1], 3), 255, np.uint8)
    out: List[np.ndarray] = []
    for row in rows:
        out += [row, spacer]
    return np.concatenate(out[:-1], axis=0)
