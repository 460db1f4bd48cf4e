"""Writing a benchmark's section into BENCHMARKS.md between its markers, leaving the rest alone."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

DEFAULT_OUTPUT = Path("BENCHMARKS.md")


def markers(name: str) -> tuple[str, str]:
    """The opening and closing markers of section ``name``."""
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def replace_section(text: str, name: str, body: str, heading: str = "") -> str:
    """``text`` with section ``name`` replaced by ``body``.

    When the markers are absent the section is appended, after ``heading`` (a
    title line, placed outside the markers so a file's own title and prose
    around an existing section are never replaced).
    """
    opening, closing = markers(name)
    block = f"{opening}\n{body.strip()}\n{closing}"
    start = text.find(opening)
    end = text.find(closing, start + len(opening)) if start >= 0 else -1
    if start >= 0 and end >= 0:
        return text[:start] + block + text[end + len(closing) :]
    if start >= 0:
        raise ValueError(f"expected {closing!r} after {opening!r}, found the opening marker alone")
    separator = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    title = f"{heading.strip()}\n\n" if heading.strip() else ""
    return f"{text}{separator}{title}{block}\n"


def write_section(path: Path, name: str, body: str, heading: str = "") -> None:
    """Replace (or append, after ``heading``) section ``name`` of the markdown file at ``path``."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(replace_section(text, name, body, heading))


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """``--output PATH`` and ``--no-write``."""
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="markdown file whose bench sections are replaced (default BENCHMARKS.md)",
    )
    parser.add_argument("--no-write", action="store_true", help="print the tables only; write no file")


def write_if_asked(args: argparse.Namespace, name: str, body: str, heading: str = "") -> None:
    """Write the section unless ``--no-write`` was given; say where it went."""
    if getattr(args, "no_write", False):
        return
    path = Path(args.output)
    write_section(path, name, body, heading)
    print(f"wrote section {name!r} of {path}")


def script_main(
    argv: Sequence[str] | None,
    *,
    script: str,
    description: str,
    quick_help: str,
    section: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run_benchmark: Callable[[argparse.Namespace, str], tuple[int, str]],
) -> int:
    """The ``python -m kitewire.bench.<script>`` entry point shared by the benchmarks:
    parse options, run, print, and write the section unless told not to."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    add_arguments(parser)
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    words = sys.argv[1:] if argv is None else list(argv)
    try:
        status, body = run_benchmark(args, f"python -m kitewire.bench.{script} " + " ".join(words))
    except ValueError as error:
        print(f"{script}: {error}", file=sys.stderr)
        return 2
    write_if_asked(args, section, body)
    return status
