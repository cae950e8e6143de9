"""Rebuild the Latin subsets of DejaVu Sans shipped next to the full fonts.

Why: fpdf2 parses the whole font file on every document and subsets it again on
output. With the full DejaVu Sans (6,000+ glyphs) that costs ~60 ms per PDF; a
Latin-only copy (~800 glyphs, no hinting, no OpenType layout tables, which
fpdf2 drops anyway) brings it to ~15 ms. The renderer uses the subsets when
every character of the document is covered and falls back to the full fonts
otherwise, so the output never loses a glyph.

The subsets are committed (fontTools output can change between versions and
documents must be byte-identical everywhere); run this only after changing the
ranges or the source fonts, from the project root:

    .venv/bin/python -m chalicelib.adapters.documents.assets.build_latin_fonts

Licence: the DejaVu licence (DejaVu-LICENSE.txt) allows modified copies whose
names do not contain "Bitstream", "Vera", "Arev" or "Tavmjong Bah".
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

# Latin scripts, punctuation (incl. U+202F narrow no-break space used by French
# number formatting), currency and a few symbols. Text is NFC-normalised before
# rendering, so combining marks are not needed.
RANGES: tuple[tuple[int, int], ...] = (
    (0x0020, 0x007E), (0x00A0, 0x017F), (0x0192, 0x0192), (0x0218, 0x021B), (0x02C6, 0x02C7),
    (0x02D8, 0x02DD), (0x2010, 0x2027), (0x202F, 0x203A), (0x20AC, 0x20AC), (0x20A0, 0x20BF),
    (0x2116, 0x2116), (0x2122, 0x2122), (0x2190, 0x2193), (0x2212, 0x2212),
)
FONTS = {"DejaVuSans.ttf": "DejaVuSans-Latin.ttf", "DejaVuSans-Bold.ttf": "DejaVuSans-Bold-Latin.ttf"}


def codepoints() -> list[int]:
    return [cp for start, end in RANGES for cp in range(start, end + 1)]


def build() -> None:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    for source, target in FONTS.items():
        font = TTFont(HERE / source, recalcTimestamp=False)
        options = subset.Options()
        options.layout_features = []
        options.name_IDs = ["*"]          # keep copyright and licence records
        options.name_languages = ["*"]
        options.notdef_outline = True
        options.recommended_glyphs = True
        options.hinting = False
        options.drop_tables += ["FFTM", "GSUB", "GPOS", "GDEF", "kern", "hdmx", "gasp", "LTSH", "VDMX", "MATH"]
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=codepoints())
        subsetter.subset(font)
        font.save(HERE / target)
        print(f"{target}: {len(font.getGlyphOrder())} glyphs, {(HERE / target).stat().st_size} bytes")


if __name__ == "__main__":
    build()
