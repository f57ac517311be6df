"""Every relative link and image in README.md and docs/*.md resolves, and CI runs the README's test commands.

Links are read from the Markdown as Python-Markdown renders it (so links inside code are not links).
An anchor must name a heading of the target page both as GitHub slugs it (the README and the guides
are read there) and as the documentation site's `toc` extension does (`mkdocs build --strict`).
"""

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import markdown
import pytest

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


class _Targets(HTMLParser):
    """Collects the href of every <a> and the src of every <img> in rendered HTML."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        wanted = {"a": "href", "img": "src"}.get(tag)
        self.found += [value for name, value in attrs if name == wanted and value]


def _render(text: str) -> markdown.Markdown:
    converter = markdown.Markdown(extensions=["fenced_code", "tables", "toc"])
    converter.convert(text)
    return converter


def _link_targets(text: str) -> list[str]:
    parser = _Targets()
    parser.feed(markdown.markdown(text, extensions=["fenced_code", "tables"]))
    return parser.found


def _github_slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, each space a hyphen."""
    plain = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower())
    return plain.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    """The anchors both renderers give the page's headings (where they agree)."""
    text = page.read_text()
    site = set()
    stack = list(_render(text).toc_tokens)
    while stack:
        token = stack.pop()
        site.add(token["id"])
        stack += token["children"]
    outside_code = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    github = {_github_slug(h) for h in re.findall(r"^#{1,6} (.+)$", outside_code, flags=re.M)}
    return site & github


def broken_links(page: Path) -> list[str]:
    """Each relative link or image of the page whose file or anchor does not exist, with the reason."""
    problems = []
    for target in _link_targets(page.read_text()):
        parts = urlsplit(target)
        if parts.scheme or parts.netloc:
            continue  # a web address: not checked here (no network in the tests)
        path = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if not path.exists():
            problems.append(f"{target}: no file {path}")
        elif not path.is_relative_to(ROOT):
            problems.append(f"{target}: outside the repository")
        elif parts.fragment and path.suffix == ".md" and parts.fragment not in _anchors(path):
            problems.append(f"{target}: no heading with anchor #{parts.fragment} in {path.name}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_a_broken_link_or_anchor_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "guide.md").write_text("# A guide\n\n## Its part\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](guide.md#its-part) ![ok](guide.md) `[code](missing.md)` [web](https://example.org)\n\n"
                    "[gone](missing.md) ![gone](missing.png) [bad anchor](guide.md#no-such-part) [self](#nowhere)\n")
    assert broken_links(page) == [
        f"missing.md: no file {tmp_path / 'missing.md'}",
        f"missing.png: no file {tmp_path / 'missing.png'}",
        "guide.md#no-such-part: no heading with anchor #no-such-part in guide.md",
        "#nowhere: no heading with anchor #nowhere in page.md",
    ]


def _readme_test_commands() -> list[str]:
    section = ROOT.joinpath("README.md").read_text().split("\n## Tests\n", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    return [re.sub(r"\s+#.*$", "", line) for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readme_test_commands_exactly():
    ci_lines = ROOT.joinpath(".ci", "run").read_text().splitlines()
    commands = _readme_test_commands()
    assert any("pytest" in command for command in commands)
    assert [command for command in commands if command not in ci_lines] == []
