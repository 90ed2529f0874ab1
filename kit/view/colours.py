"""Colours for pictures that must read in JupyterLab Light and Dark alike.

Graphviz draws with fixed colours, so a diagram is drawn once, in its light
palette, and :func:`dark_css` adds CSS rules that repaint it when JupyterLab
shows a dark theme (``body[data-jp-theme-light="false"]``, the attribute
JupyterLab sets on the page).  Each colour's dark twin comes from
:func:`dark`: the same hue and saturation, lightness turned over, so a pale
fill becomes a deep one and dark text becomes light text, and the pairs that
read well in one palette read well in the other (the tests measure both).

A faded part of a picture is *mixed* toward the background
(:func:`mix`), never made translucent: translucent text has no fixed
contrast, and what lies behind it shows through.
"""

from __future__ import annotations

import colorsys
import re

HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")
DARK_SELECTOR = 'body[data-jp-theme-light="false"]'
# JupyterLab's own backgrounds (--jp-layout-color0), for pictures on the page itself.
LIGHT_PAGE, DARK_PAGE = "#ffffff", "#111111"
# The lightness range of the dark palette: white becomes DARKEST, black LIGHTEST.
DARKEST, LIGHTEST = 0.085, 0.93
_PAINT = re.compile(r'\b(fill|stroke)="(#[0-9A-Fa-f]{6})"')


def rgb(colour: str) -> tuple[float, float, float]:
    """``#rrggbb`` as three fractions."""
    if not HEX.match(colour):
        raise ValueError(f"{colour!r} is not a #rrggbb colour")
    return tuple(int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def hex_of(red: float, green: float, blue: float) -> str:
    return "#" + "".join(f"{round(max(0.0, min(1.0, c)) * 255):02x}" for c in (red, green, blue))


def mix(colour: str, toward: str, amount: float) -> str:
    """``colour`` moved ``amount`` (0 to 1) of the way to ``toward``."""
    a, b = rgb(colour), rgb(toward)
    return hex_of(*(x + (y - x) * amount for x, y in zip(a, b, strict=True)))


def luminance(colour: str) -> float:
    """WCAG 2 relative luminance."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(one: str, other: str) -> float:
    """WCAG 2 contrast ratio, from 1 (none) to 21 (black on white)."""
    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def dark(colour: str) -> str:
    """The dark-theme twin of a light-palette colour: same hue, lightness turned over."""
    hue, lightness, saturation = colorsys.rgb_to_hls(*rgb(colour))
    turned = LIGHTEST - lightness * (LIGHTEST - DARKEST)
    return hex_of(*colorsys.hls_to_rgb(hue, turned, saturation))


def painted(svg: str) -> list[str]:
    """Every ``#rrggbb`` colour an SVG fills or strokes with, lower case, sorted."""
    return sorted({colour.lower() for _, colour in _PAINT.findall(svg)})


def dark_css(svg: str, scope: str) -> str:
    """CSS that repaints ``svg`` (inside ``scope``) in its dark palette under a dark theme.

    CSS rules override the fill and stroke attributes Graphviz writes, so
    the SVG itself stays as Graphviz made it.
    """
    used = sorted({(what, colour.lower()) for what, colour in _PAINT.findall(svg)})
    rules = [f'{DARK_SELECTOR} {scope} [{what}="{colour}" i]{{{what}:{dark(colour)}}}'
             for what, colour in used]
    # Text Graphviz writes without a fill is black: light in the dark palette.
    rules.append(f"{DARK_SELECTOR} {scope} text:not([fill]){{fill:{dark('#000000')}}}")
    return "\n".join(rules)
