"""The "made with AI" label every image packshot writes: the IPTC digital source type in XMP.

IPTC's Digital Source Type vocabulary (https://cv.iptc.org/newscodes/digitalsourcetype/) is what
Google Merchant Center, Meta and the C2PA read to tell a generated image from a photograph:

- `trainedAlgorithmicMedia` for a shot the model drew (`packshot shoot`);
- `compositeWithTrainedAlgorithmicMedia` for a pixel-true shot: the real product's photo
  composited over a generated scene (`packshot place`), or such a shot delivered on white.

The XMP packet is built with the standard library's ElementTree (the RDF/XML shape of the XMP
specification, part 1, §7) and written by Pillow where each format keeps XMP: a PNG's `iTXt`
chunk keyed `XML:com.adobe.xmp`, a JPEG's APP1 segment. `exiftool` reads both back
(`-XMP-iptcExt:DigitalSourceType`), which the tests check.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Literal

from PIL import Image

IPTC_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
GENERATED = "trainedAlgorithmicMedia"
COMPOSITE = "compositeWithTrainedAlgorithmicMedia"
SourceType = Literal["trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"]
PNG_XMP_KEY = "XML:com.adobe.xmp"  # the iTXt keyword of the XMP specification, part 3, §1.1.5

_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
_XMP = "http://ns.adobe.com/xap/1.0/"
_X = "adobe:ns:meta/"
for _prefix, _uri in (("x", _X), ("rdf", _RDF), ("Iptc4xmpExt", _IPTC_EXT), ("xmp", _XMP)):
    ET.register_namespace(_prefix, _uri)


def xmp_packet(source_type: SourceType, *, creator_tool: str) -> bytes:
    """The XMP packet (UTF-8) that labels an image with its IPTC digital source type."""
    if source_type not in (GENERATED, COMPOSITE):
        raise ValueError(f"unknown digital source type {source_type!r}")
    meta = ET.Element(f"{{{_X}}}xmpmeta")
    rdf = ET.SubElement(meta, f"{{{_RDF}}}RDF")
    description = ET.SubElement(rdf, f"{{{_RDF}}}Description", {f"{{{_RDF}}}about": ""})
    ET.SubElement(description, f"{{{_IPTC_EXT}}}DigitalSourceType").text = IPTC_TYPES + source_type
    ET.SubElement(description, f"{{{_XMP}}}CreatorTool").text = creator_tool
    body = ET.tostring(meta, encoding="unicode")
    # The packet wrapper lets editors rewrite the XMP in place (XMP specification part 1, §7.3).
    return (
        f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n{body}\n<?xpacket end="w"?>'
    ).encode()


def read_source_type(path: Path) -> str | None:
    """The digital source type an image's XMP names (`trainedAlgorithmicMedia`, …), or None."""
    with Image.open(path) as image:
        image.load()  # a PNG's iTXt chunks after the pixels are read with them
        raw = image.info.get("xmp") or image.info.get(PNG_XMP_KEY)
    if not raw:
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    start, end = text.find("<x:xmpmeta"), text.find("</x:xmpmeta>")
    if start < 0 or end < 0:
        return None
    try:
        root = ET.fromstring(text[start : end + len("</x:xmpmeta>")])
    except ET.ParseError:
        return None
    found = root.find(f".//{{{_IPTC_EXT}}}DigitalSourceType")
    if found is None or not found.text:
        return None
    return found.text.strip().removeprefix(IPTC_TYPES)
