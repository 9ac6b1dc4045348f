// A BlurHash decoder (the placeholder shown while a variant loads). Written for this page
// from the format's description: base-83 digits; the first gives the number of components
// (x and y), the second the quantised maximum AC value, then the DC colour (sRGB, 4 digits)
// and one 2-digit AC value per other component (three 19-level channels, sign-squared).
"use strict";
(function () {
  const DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";

  function decode83(text) {
    let value = 0;
    for (const c of text) {
      const digit = DIGITS.indexOf(c);
      if (digit < 0) throw new Error("not a BlurHash digit: " + c);
      value = value * 83 + digit;
    }
    return value;
  }

  function toLinear(channel) {
    const v = channel / 255;
    return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  }

  function toSrgb(linear) {
    const v = Math.min(1, Math.max(0, linear));
    return v <= 0.0031308 ? Math.trunc(v * 12.92 * 255 + 0.5) : Math.trunc((1.055 * Math.pow(v, 1 / 2.4) - 0.055) * 255 + 0.5);
  }

  function signedSquare(v) {
    return Math.sign(v) * v * v;
  }

  // RGBA pixels (Uint8ClampedArray, width * height * 4) of `hash`, or an Error.
  function decode(hash, width, height) {
    if (typeof hash !== "string" || hash.length < 6) throw new Error("BlurHash too short");
    const size = decode83(hash[0]);
    const nx = (size % 9) + 1;
    const ny = Math.floor(size / 9) + 1;
    if (hash.length !== 4 + 2 * nx * ny) throw new Error("BlurHash length does not match its components");
    const maxAc = (decode83(hash[1]) + 1) / 166;
    const colors = [];
    const dc = decode83(hash.slice(2, 6));
    colors.push([toLinear(dc >> 16), toLinear((dc >> 8) & 255), toLinear(dc & 255)]);
    for (let i = 1; i < nx * ny; i++) {
      const v = decode83(hash.slice(4 + i * 2, 6 + i * 2));
      colors.push([
        signedSquare((Math.floor(v / 361) - 9) / 9) * maxAc,
        signedSquare((Math.floor(v / 19) % 19 - 9) / 9) * maxAc,
        signedSquare((v % 19 - 9) / 9) * maxAc,
      ]);
    }
    const pixels = new Uint8ClampedArray(width * height * 4);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let r = 0, g = 0, b = 0;
        for (let j = 0; j < ny; j++) {
          const cy = Math.cos((Math.PI * y * j) / height);
          for (let i = 0; i < nx; i++) {
            const basis = Math.cos((Math.PI * x * i) / width) * cy;
            const c = colors[i + j * nx];
            r += c[0] * basis; g += c[1] * basis; b += c[2] * basis;
          }
        }
        const p = 4 * (x + y * width);
        pixels[p] = toSrgb(r); pixels[p + 1] = toSrgb(g); pixels[p + 2] = toSrgb(b); pixels[p + 3] = 255;
      }
    }
    return pixels;
  }

  // Paints `hash` on `canvas` (at 32 px on its long side; CSS stretches it).
  function paint(canvas, hash, aspect) {
    const width = aspect >= 1 ? 32 : Math.max(1, Math.round(32 * aspect));
    const height = aspect >= 1 ? Math.max(1, Math.round(32 / aspect)) : 32;
    canvas.width = width;
    canvas.height = height;
    const image = canvas.getContext("2d").createImageData(width, height);
    image.data.set(decode(hash, width, height));
    canvas.getContext("2d").putImageData(image, 0, 0);
  }

  window.BlurHash = { decode, paint };
})();
