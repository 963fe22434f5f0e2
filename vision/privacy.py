"""May this picture show a person? Decides only *whether to keep it*, never anything about the person.

A picture is treated as possibly showing a person (→ ``ephemeral``: kept in memory for the session,
never written to disk, no colour read from it) when any of these holds:

* the viewer's words ask about themselves (skin, face, outfit, "does it suit me", a selfie ...);
* OpenCV's bundled Haar cascade finds something face-like. It is used as a yes/no gate and nothing
  else: no landmarks, no crops, no attributes; the boxes are discarded at once;

Separately, a picture that matched no product and is mostly skin-toned (a close-up of a cheek or an
arm) gets no colour read from it (``mostly_skin``): a skin tone is not something to describe.

No face recognition, no age/gender/ethnicity/health inference: there is no code for any of it, and
``GUARDRAIL`` is the instruction the agent passes to the model with every picture.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

GUARDRAIL = (
    "图片仅用于识别商品、读取图中文字和商品颜色。不要根据照片推断或评论观众的年龄、性别、民族、"
    "健康状况、身材、长相等个人特征；涉及肤质、肤色、尺码等问题，请让观众用文字描述自己的情况，"
    "再依据商品资料回答。"
)

# Words that say the picture is of the viewer (or another person), not of a product.
_PERSON_RE = re.compile(
    r"(皮肤|肤质|肤色|脸|素颜|痘|斑|皱纹|毛孔|黑眼圈|自拍|照片里的我|我的照片|本人|身材|体型|穿搭|穿上|上身|"
    r"试色|上嘴|上脸|我穿|我戴|我涂|我这|我适合|适合我|我能穿|我能用|显白|显黑|发型|头发|孩子|老公|老婆|"
    r"妈妈|爸爸|selfie|my skin|my face|my outfit|suit me|on me)",
    re.I,
)

SKIN_FRACTION = 0.5


def text_mentions_person(viewer_text: str) -> str | None:
    m = _PERSON_RE.search(viewer_text or "")
    return f"text:{m.group(0)}" if m else None


@lru_cache(maxsize=1)
def _cascade() -> cv2.CascadeClassifier | None:
    try:
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    except AttributeError:
        return None
    if not path.is_file():
        return None
    c = cv2.CascadeClassifier(str(path))
    return None if c.empty() else c


def detector_available() -> bool:
    return _cascade() is not None


def has_face(img: Image.Image) -> bool:
    """True if anything face-like is in the picture. Returns a boolean only; nothing is kept."""
    c = _cascade()
    if c is None:
        return False
    g = np.asarray(img.convert("L"))
    s = min(1.0, 480 / max(g.shape))
    if s < 1.0:
        g = cv2.resize(g, (int(g.shape[1] * s), int(g.shape[0] * s)), interpolation=cv2.INTER_AREA)
    g = cv2.equalizeHist(g)
    side = max(24, int(0.10 * min(g.shape)))
    # minNeighbors=10: no false alarm on the 114 demo product pictures (6 flagged 10 of them).
    found = c.detectMultiScale(g, scaleFactor=1.1, minNeighbors=10, minSize=(side, side))
    return len(found) > 0


def skin_fraction(img: Image.Image) -> float:
    """Share of skin-toned pixels (a broad YCrCb box, the same for every skin tone)."""
    small = img.convert("RGB")
    small.thumbnail((128, 128))
    ycc = cv2.cvtColor(np.asarray(small), cv2.COLOR_RGB2YCrCb)
    cr, cb = ycc[..., 1], ycc[..., 2]
    mask = (cr >= 135) & (cr <= 173) & (cb >= 80) & (cb <= 125) & (ycc[..., 0] > 40)
    return float(mask.mean())


def mostly_skin(img: Image.Image) -> bool:
    return skin_fraction(img) >= SKIN_FRACTION


def person_reason(img: Image.Image, viewer_text: str = "") -> str | None:
    """Why this picture may show a person ("text:肤色", "face"), or None."""
    r = text_mentions_person(viewer_text)
    if r:
        return r
    if has_face(img):
        return "face"
    return None
