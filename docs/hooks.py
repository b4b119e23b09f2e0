"""MkDocs hook: fills the reference pages from the code (`zerosum.reference`) and includes
files from the repository, so nothing is documented by hand twice.

In a page, `<!-- generated: NAME -->` becomes `zerosum.reference.GENERATED[NAME]()` (or the
recipes in configs/ for `recipes`), and `<!-- include: FILE -->` the text of FILE (a path
from the repository root), its first heading dropped."""

from __future__ import annotations

import re
from pathlib import Path

from zerosum.reference import GENERATED, recipes_reference

MARKER = re.compile(r"<!-- (generated|include): ([\w./-]+) -->")


def on_page_markdown(markdown: str, page, config, files) -> str:
    root = Path(config["config_file_path"]).parent

    def fill(match: re.Match) -> str:
        kind, name = match.groups()
        if kind == "include":
            text = (root / name).read_text()
            return re.sub(r"\A# .*\n", "", text)
        if name == "recipes":
            return recipes_reference(root / "configs")
        if name not in GENERATED:
            raise ValueError(f"{page.file.src_path}: unknown generated section {name!r}")
        return GENERATED[name]()

    return MARKER.sub(fill, markdown)
