"""Writes simple demo inputs (person, mask, DensePose stand-in, garment) at 768x1024."""

import sys
from pathlib import Path

from PIL import Image, ImageDraw

out = Path(sys.argv[1] if len(sys.argv) > 1 else "var/demo")
out.mkdir(parents=True, exist_ok=True)
size = (768, 1024)
person = Image.new("RGB", size, (235, 235, 235))
draw = ImageDraw.Draw(person)
draw.ellipse((314, 80, 454, 240), fill=(224, 180, 150))
draw.rectangle((250, 260, 518, 620), fill=(40, 60, 160))
draw.rectangle((280, 620, 488, 980), fill=(50, 50, 60))
person.save(out / "person.png")
mask = Image.new("L", size, 0)
ImageDraw.Draw(mask).rectangle((230, 250, 538, 640), fill=255)
mask.save(out / "mask.png")
pose = Image.new("RGB", size, (0, 0, 0))
ImageDraw.Draw(pose).rectangle((250, 260, 518, 620), fill=(90, 160, 200))
pose.save(out / "pose.png")
garment = Image.new("RGB", size, (255, 255, 255))
ImageDraw.Draw(garment).polygon(
    [(150, 200), (618, 200), (700, 400), (600, 420), (600, 900), (168, 900), (168, 420), (68, 400)],
    fill=(200, 30, 40),
)
garment.save(out / "garment.png")
print(f"demo inputs in {out}")
