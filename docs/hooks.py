"""MkDocs hook: fills the reference pages from the code (`zerosum.reference`) and includes
files from the repository, so nothing is documented by hand twice.

In a page, `<!-- generated: NAME -->` becomes `zerosum.reference.GENERATED[NAME]()` (or the
recipes in configs/ for `recipes`), and `<!-- include: FILE -->` the text of FILE (a path
from the repository root), its first heading dropped. The relative links of an included file
keep working in the site: an image it shows is copied beside the page, a link to another
included file points at the page that includes it, and a link to any other file of the
repository (not in the site) becomes the file's name as code."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

from zerosum.reference import GENERATED, recipes_reference

MARKER = re.compile(r"<!-- (generated|include): ([\w./-]+) -->")
# [text](target) and ![alt](target); a target with a scheme or an anchor alone is left as is.
LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(([^)\s]+)\)")
EXTERNAL = re.compile(r"\A(?:[a-z][a-z0-9+.-]*:|#|/)", re.I)

# included file (from the repository root) -> the page (docs_dir path) that includes it
included_by: dict[str, str] = {}


def _root(config) -> Path:
    return Path(config["config_file_path"]).parent


def _relative_links(text: str, source: str):
    """(whole match, is image, text, path as written, path from the repository root, anchor)
    of each relative link in `text`, the included file at `source`."""
    for match in LINK.finditer(text):
        bang, label, target = match.groups()
        if EXTERNAL.match(target):
            continue
        path, _, anchor = target.partition("#")
        full = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        yield match.group(0), bool(bang), label, path, full, anchor


def on_files(files, config):
    """Notes which page includes which file, and adds the images the included files show."""
    root = _root(config)
    included_by.clear()
    for page in [f for f in files if f.is_documentation_page()]:
        for kind, name in MARKER.findall(page.content_string):
            if kind == "include":
                included_by[name] = page.src_uri
    for name, page_uri in included_by.items():
        for _, image, _, path, full, _ in _relative_links((root / name).read_text(), name):
            if not image or not (root / full).is_file():
                continue
            # where the link, read from the page, lands in docs_dir
            uri = posixpath.normpath(posixpath.join(posixpath.dirname(page_uri), path))
            if files.get_file_from_path(uri) is None:
                files.append(File.generated(config, uri, abs_src_path=str(root / full)))
    return files


def _include(name: str, page_uri: str, root: Path) -> str:
    text = re.sub(r"\A# .*\n", "", (root / name).read_text())

    def relink(match: re.Match) -> str:
        links = list(_relative_links(match.group(0), name))
        if not links:
            return match.group(0)
        whole, image, label, _, full, anchor = links[0]
        if image:
            return whole  # copied beside the page by on_files
        if full in included_by:
            target = posixpath.relpath(included_by[full], posixpath.dirname(page_uri) or ".")
            return f"[{label}]({target}{'#' + anchor if anchor else ''})"
        code = f"`{full}`"
        return code if label.strip("`") == full else f"{label} ({code})"

    return LINK.sub(relink, text)


def on_page_markdown(markdown: str, page, config, files) -> str:
    root = _root(config)

    def fill(match: re.Match) -> str:
        kind, name = match.groups()
        if kind == "include":
            return _include(name, page.file.src_uri, root)
        if name == "recipes":
            return recipes_reference(root / "configs")
        if name not in GENERATED:
            raise ValueError(f"{page.file.src_path}: unknown generated section {name!r}")
        return GENERATED[name]()

    return MARKER.sub(fill, markdown)
