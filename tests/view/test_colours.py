"""Colour arithmetic for the two themes: mixing, contrast, and each colour's dark twin."""

from __future__ import annotations

import pytest

from kit.view import colours


def test_mix_moves_a_colour_toward_another() -> None:
    assert colours.mix("#000000", "#ffffff", 0.0) == "#000000"
    assert colours.mix("#000000", "#ffffff", 1.0) == "#ffffff"
    assert colours.mix("#009e73", "#ffffff", 0.6) == "#99d8c7"


def test_contrast_is_wcags() -> None:
    assert colours.contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert colours.contrast("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert colours.contrast("#595959", "#ffffff") == pytest.approx(7.0, abs=0.01)


def test_the_dark_twin_turns_lightness_over_and_keeps_the_hue() -> None:
    assert colours.luminance(colours.dark("#ffffff")) < 0.01  # white: a near-black fill
    assert colours.luminance(colours.dark("#000000")) > 0.8  # black text: light text
    pale, deep = colours.dark("#ccece3"), colours.dark("#009e73")
    assert colours.luminance(pale) < colours.luminance(deep)  # a pale fill goes deep
    green = colours.rgb(colours.dark("#009e73"))
    assert green[1] > green[0] and green[1] > green[2]  # still green


def test_pairs_that_read_in_light_read_in_dark() -> None:
    for text, fill in [("#000000", "#ccece3"), ("#595959", "#ffffff"), ("#00578a", "#e3f0f8")]:
        assert colours.contrast(text, fill) >= 4.5
        assert colours.contrast(colours.dark(text), colours.dark(fill)) >= 4.5


def test_dark_css_repaints_what_the_svg_uses_inside_its_scope() -> None:
    svg = '<svg><polygon fill="#CCECE3" stroke="#009e73"/><text fill="#000000">x</text></svg>'
    css = colours.dark_css(svg, ".here")
    assert f'body[data-jp-theme-light="false"] .here [fill="#ccece3" i]{{fill:' \
           f'{colours.dark("#ccece3")}}}' in css
    assert '[stroke="#009e73" i]{stroke:' in css and '[fill="#000000" i]{fill:' in css
    assert '[stroke="#ccece3"' not in css  # only what is used, as it is used


def test_a_colour_that_is_not_hex_is_refused() -> None:
    with pytest.raises(ValueError, match="not a #rrggbb colour"):
        colours.rgb("white")
