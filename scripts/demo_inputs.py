"""Writes demo inputs at 768x1024: a person photo drawn in the colours the tiny model's parsing
stand-ins recognise (so registering it from the photo alone gives plausible masks), a mask and a
DensePose stand-in for the uploads that still take them (v1 try-on), and a garment."""

import sys
from pathlib import Path

from PIL import Image, ImageDraw

from vton.preprocess.body.standins import demo_person

out = Path(sys.argv[1] if len(sys.argv) > 1 else "var/demo")
out.mkdir(parents=True, exist_ok=True)
size = (768, 1024)
demo_person().save(out / "person.png")
mask = Image.new("L", size, 0)
ImageDraw.Draw(mask).rectangle((230, 230, 538, 600), fill=255)
mask.save(out / "mask.png")
pose = Image.new("RGB", size, (0, 0, 0))
ImageDraw.Draw(pose).rectangle((250, 240, 518, 600), fill=(90, 160, 200))
pose.save(out / "pose.png")
garment = Image.new("RGB", size, (255, 255, 255))
ImageDraw.Draw(garment).polygon(
    [(150, 200), (618, 200), (700, 400), (600, 420), (600, 900), (168, 900), (168, 420), (68, 400)],
    fill=(200, 30, 40),
)
garment.save(out / "garment.png")
print(f"demo inputs in {out}")
