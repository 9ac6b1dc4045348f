"""Generates the demo's sample photos: varied formats and sizes, EXIF orientation and camera
fields, GPS, alpha, animation, and keys with spaces, '+', '#', parentheses and non-ASCII
letters. Nothing is downloaded; every pixel is drawn here.

usage: python make_samples.py OUT_DIR
"""
import math
import os
import random
import sys

from PIL import Image, ImageDraw, ImageFont

random.seed(7)


def font(size):
    return ImageFont.load_default(size=size)


def scenery(w, h, hue_shift=0):
    """A landscape: sky gradient, sun, three ranges of hills, a little grain."""
    img = Image.new("RGB", (w, h))
    px = img.load()
    for y in range(h):
        t = y / h
        sky = (int(40 + 120 * t + hue_shift) % 256, int(90 + 110 * t), int(200 - 40 * t))
        for x in range(0, w, 4):
            for dx in range(4):
                if x + dx < w:
                    px[x + dx, y] = sky
    d = ImageDraw.Draw(img)
    r = h // 10
    d.ellipse((w * 0.7 - r, h * 0.22 - r, w * 0.7 + r, h * 0.22 + r), fill=(255, 214, 120))
    for i, color in enumerate([(70, 110, 80), (50, 90, 60), (30, 70, 45)]):
        base = h * (0.55 + 0.13 * i)
        points = [(0, h)]
        for x in [*range(0, w, max(1, w // 40)), w]:
            y = base - h * 0.08 * math.sin(x / w * math.pi * (2 + i) + i) - random.random() * h * 0.01
            points.append((x, y))
        points.append((w, h))
        d.polygon(points, fill=color)
    return img


def label(img, text, size):
    d = ImageDraw.Draw(img)
    d.text((size, size), text, fill=(255, 255, 255), font=font(size), stroke_width=max(1, size // 12), stroke_fill=(0, 0, 0))
    return img


def up_arrow(img):
    """An arrow pointing up and the word TOP at the top: wrong orientation is obvious."""
    w, h = img.size
    d = ImageDraw.Draw(img)
    cx, top, size = w // 2, h // 8, min(w, h) // 6
    d.polygon([(cx, top), (cx - size, top + size), (cx + size, top + size)], fill=(230, 40, 40))
    d.rectangle((cx - size // 3, top + size, cx + size // 3, top + size * 3), fill=(230, 40, 40))
    d.text((cx, top // 2), "TOP", fill=(255, 255, 255), font=font(size // 2), anchor="mm")
    return img


def camera_exif(orientation=1, gps=None, model="DC-1"):
    exif = Image.Exif()
    exif[0x010F] = "Demo Camera Co."
    exif[0x0110] = model
    exif[0x0112] = orientation
    ifd = exif.get_ifd(0x8769)
    ifd[0x9003] = "2026:05:14 09:30:12"
    ifd[0x829A] = 1 / 250
    ifd[0x829D] = 2.8
    ifd[0x8827] = 200
    ifd[0x920A] = 35.0
    ifd[0xA434] = "Demo 35mm f/1.8"
    if gps:
        (lat, lon, alt) = gps

        def dms(v):
            v = abs(v)
            d = int(v)
            m = int((v - d) * 60)
            s = round(((v - d) * 60 - m) * 60, 3)
            return (float(d), float(m), s)

        g = exif.get_ifd(0x8825)
        g[1] = "N" if lat >= 0 else "S"
        g[2] = dms(lat)
        g[3] = "E" if lon >= 0 else "W"
        g[4] = dms(lon)
        g[5] = b"\x00"
        g[6] = float(alt)
    return exif


def main(out):
    os.makedirs(out, exist_ok=True)

    # A 12 MP camera photo with full EXIF and GPS (Lisbon).
    img = label(scenery(4000, 3000), "camera photo, 12 MP, GPS", 200)
    img.save(os.path.join(out, "harbour at dawn.jpg"), quality=90,
             exif=camera_exif(gps=(38.7071, -9.1355, 42.0)))

    # A phone photo stored sideways with EXIF orientation 6: upright it is a portrait.
    upright = up_arrow(label(scenery(3024, 4032, 40), "orientation 6", 200))
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    stored.save(os.path.join(out, "phone (portrait).jpg"), quality=88,
                exif=camera_exif(orientation=6, model="Pocket 12"))

    # Orientation 8 as well, and a key with '+', '#' and non-ASCII letters.
    upright = up_arrow(label(scenery(1800, 2400, 90), "orientation 8", 130))
    stored = upright.transpose(Image.Transpose.ROTATE_270)
    stored.save(os.path.join(out, "café+menu #2.jpg"), quality=85,
                exif=camera_exif(orientation=8, model="Pocket 12"))

    # A PNG logo with transparency.
    logo = Image.new("RGBA", (1200, 800), (0, 0, 0, 0))
    d = ImageDraw.Draw(logo)
    d.ellipse((100, 100, 700, 700), fill=(30, 144, 255, 255))
    d.rectangle((500, 250, 1100, 550), fill=(255, 140, 0, 200))
    d.text((600, 400), "alpha", fill=(255, 255, 255, 255), font=font(110), anchor="mm")
    logo.save(os.path.join(out, "logo-alpha.png"))

    # A WebP screenshot.
    shot = scenery(1920, 1080, 120)
    label(shot, "WebP 1920x1080", 100).save(os.path.join(out, "screenshot.webp"), quality=85)

    # An animated GIF: the first frame is rendered, the frames are counted.
    frames = []
    for i in range(12):
        f = Image.new("RGB", (480, 360), (20, 20, 40))
        d = ImageDraw.Draw(f)
        a = i / 12 * 2 * math.pi
        d.ellipse((240 + 120 * math.cos(a) - 30, 180 + 120 * math.sin(a) - 30,
                   240 + 120 * math.cos(a) + 30, 180 + 120 * math.sin(a) + 30), fill=(250, 200, 60))
        d.text((240, 180), f"frame {i + 1}", fill=(255, 255, 255), font=font(32), anchor="mm")
        frames.append(f)
    frames[0].save(os.path.join(out, "spinner.gif"), save_all=True, append_images=frames[1:], duration=80, loop=0)

    # A grayscale A4 scan at 300 dpi.
    scan = scenery(2480, 3508).convert("L")
    label(scan.convert("RGB"), "grayscale scan", 160).convert("L").save(os.path.join(out, "scan 2026-05 (1).jpg"), quality=85)

    # Not an image at all: it must end as FAILED with a code, not vanish.
    with open(os.path.join(out, "notes.jpg"), "w") as f:
        f.write("These are meeting notes, not a photo.\n")


if __name__ == "__main__":
    main(sys.argv[1])
