"""The report as typed blocks, rendered to Markdown and to one self-contained HTML page.

Prose is Markdown written here, with every value that comes from the data or the user
(spec names, class names, paths, the command line) escaped on its way in by :func:`prose`:
a ``|`` cannot split a table cell, a ``*`` cannot start emphasis, and ``<script>`` arrives
as the text ``&lt;script&gt;``. report.md is that Markdown; report.html is a Jinja2 template
with autoescaping, into which prose comes converted by python-markdown (its input holding
no raw HTML), and tables, code and captions come as plain text that the template escapes.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import markdown as markdown_lib
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from cnnlab.files import make_folder, write_file
from cnnlab.presenters.plots import figure_png

_SPECIAL = re.compile(r"([\\`*_\[\]#|!])")                       # backslash-escaped wherever they stand
_BLOCK_START = re.compile(r"^(?:(\d+)([.)])(?=\s|$)|([-+]))")  # what would start a list or a rule


def md_escape(value: object, line_start: bool = True) -> str:
    """``value`` as Markdown text that shows it literally, on one line, with no HTML in it.

    ``line_start``: the value may begin a line, where '1.' or '-' would start a list (not in a table cell).
    """
    text = " ".join(str(value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _SPECIAL.sub(r"\\\1", text)
    if not line_start:
        return text
    return _BLOCK_START.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", text)


def prose(template: str, **values: object) -> str:
    """``template`` (Markdown written here) with each ``{name}`` filled by an escaped value."""
    return template.format(**{name: md_escape(value) for name, value in values.items()})


@dataclass
class Block:
    """One piece of the report, in order; ``kind`` picks how the templates draw it."""

    kind: str                                   # heading, prose, table, code or figures
    text: str = ""                              # heading text, prose Markdown, or code
    style: str = ""                             # prose: headline, warning, note or '' (plain)
    anchor: str = ""                            # heading: the id other pages and tests find it by
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    pictures: list[Picture] = field(default_factory=list)

    @property
    def html(self) -> Markup:
        """Prose as HTML: python-markdown's output of Markdown whose values were escaped by :func:`prose`."""
        return Markup(markdown_lib.markdown(self.text, extensions=["tables"]))


@dataclass
class Picture:
    """A figure as stored under figures/ and embedded in the page."""

    name: str          # file name under figures/
    alt: str           # what it shows, for screen readers (plain text)
    caption: str       # Markdown, as prose
    png: bytes
    width: int
    height: int
    role: str = ""     # 'samples' marks the data's sample grids (the browser test finds them by it)

    @property
    def data_uri(self) -> str:
        """The PNG bytes written, embedded (the file is not read back)."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode()

    @property
    def caption_html(self) -> Markup:
        """The caption as HTML, through python-markdown like all prose."""
        return Block("prose", self.caption).html


class Document:
    """Collects the report's blocks; figures are written to ``folder``/figures as they come."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        make_folder(self.folder / "figures", root=self.folder)  # refused if a link was planted there
        self.blocks: list[Block] = []
        self.names: set[str] = set()

    def heading(self, text: str, anchor: str) -> None:
        """A section heading (plain text)."""
        self.blocks.append(Block("heading", text, anchor=anchor))

    def prose(self, template: str, style: str = "", **values: object) -> None:
        """A paragraph: ``template`` is Markdown, every value escaped (see :func:`prose`)."""
        self.blocks.append(Block("prose", prose(template, **values), style=style))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        """A table of plain-text cells, the first column left-aligned and the rest right-aligned."""
        self.blocks.append(Block("table", header=list(header), rows=[list(map(str, row)) for row in rows]))

    def code(self, text: str) -> None:
        """Preformatted text, shown as it is."""
        self.blocks.append(Block("code", text.rstrip()))

    def figures(self, *pictures: Picture | None) -> None:
        """One figure, or several side by side where the page is wide enough; None entries are left out."""
        shown = [picture for picture in pictures if picture is not None]
        if shown:
            self.blocks.append(Block("figures", pictures=shown))

    def picture(self, fig, name: str, alt: str, caption: str = "", role: str = "", **values: object) -> Picture:
        """Store ``fig`` as figures/<name>.png (``name``, from spec names, made one safe file name).

        ``caption`` is a Markdown template filled with the escaped ``values``, as :meth:`prose`'s.
        """
        from PIL import Image

        base = name = re.sub(r"[^A-Za-z0-9_.-]", "-", name).lstrip(".")[:100] or "figure"
        count = 1
        while name in self.names:  # two specs whose names differ only in characters made safe
            name, count = f"{base}-{count}", count + 1
        self.names.add(name)
        png = figure_png(fig)
        write_file(self.folder / "figures" / f"{name}.png", png, root=self.folder)
        width, height = Image.open(io.BytesIO(png)).size
        return Picture(f"{name}.png", " ".join(alt.split()), prose(caption, **values), png, width, height, role)

    def render(self, title: str, lead: str) -> tuple[str, str]:
        """``(markdown, html)`` of the whole report; ``lead`` is a line of plain text under the title."""
        environment = _environment()
        values = {"title": title, "lead": lead, "blocks": self.blocks}
        return (environment.get_template("report.md").render(**values),
                environment.get_template("report.html").render(**values))


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``, so the text cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(md_escape(cell, line_start=False) or " " for cell in cells) + " |"


def _environment() -> Environment:
    environment = Environment(loader=PackageLoader("cnnlab.report", "templates"),
                              autoescape=select_autoescape(enabled_extensions=("html",)),
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    environment.filters.update(md=md_escape, fence=_fence, md_row=_md_row)
    return environment


# One way to write each kind of number, everywhere in the report.

def percent(value: float) -> str:
    """An accuracy or a share: 0.8639 -> '86.4%' (a negative one with a minus sign, as every number here)."""
    return f"{value * 100:.1f}%".replace("-", "−")


def percent_stat(stat) -> str:
    """An accuracy over seeds: '86.4%', or '86.4 ± 1.2%' (mean ± sample standard deviation)."""
    return percent(stat.mean) if stat.std is None else f"{stat.mean * 100:.1f} ± {stat.std * 100:.1f}%"


def points(value: float) -> str:
    """A difference of accuracies in percentage points: 0.448 -> '44.8', -0.019 -> '−1.9' (a minus sign)."""
    return f"{value * 100:.1f}".replace("-", "−")


def signed_points(value: float) -> str:
    """A signed difference in percentage points: -0.0251 -> '−2.5', 0.1 -> '+10.0'."""
    return f"{value * 100:+.1f}".replace("-", "−")


def p_text(value: float) -> str:
    """A p-value to two significant digits: 'p = 0.041', 'p = 0.00061'."""
    return f"p = {value:.2g}"


def seeds_text(seeds: list[int]) -> str:
    """'seed 0', 'seeds 0 and 1', 'seeds 0, 1 and 2'."""
    seeds = [str(seed) for seed in seeds]
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    return f"seeds {', '.join(seeds[:-1])} and {seeds[-1]}"
