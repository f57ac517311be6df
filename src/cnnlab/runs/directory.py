"""A run directory's files: creating and marking it, reading and writing its records.

A run directory holds .cnnlab.json (the marker), config.json (the resolved options and
the dataset's identity), spec.yaml, summary.txt, metrics.csv (a row per epoch),
history.json, manifest.json (versions, device, threads, dataset identity, seed, command
line), checkpoint.pt and, once finished, model.safetensors.

cnnlab writes, empties or removes only folders it made, which it proves with the
marker it writes into each new run or comparison folder; and in them only files it
names here. Every write goes through :func:`cnnlab.files.write_file`. Functions here
return data; the CLI prints.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.files import read_regular, remove_files, write_file
from cnnlab.formats import parse_json
from cnnlab.net.fields import shown

MARKER = ".cnnlab.json"
METRIC_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "time", "train_time",
                  "images_per_second", "lr")
# cnnlab's own files in a run; a restart removes the records of the attempt that died.
RUN_FILES = ("config.json", "spec.yaml", "summary.txt", "metrics.csv", "history.json", "manifest.json",
             "checkpoint.pt", "model.safetensors")
RESTART_FILES = ("manifest.json", "metrics.csv", "history.json")
MAX_RECORD_BYTES = 64 * 1024**2  # a JSON or CSV record; CIFAR-10's run records are a few KB


class RunError(CnnlabError):
    """A run directory that exists already, or is missing, incomplete or not cnnlab's; names it."""


def check_folder_name(name: str, option: str = "--name") -> str:
    """``name`` as one folder name: no separators, not '.' or '..', so nothing lands outside --out."""
    if not isinstance(name, str) or name in ("", ".", "..") or re.search(r"[/\\\x00]", name):
        raise RunError(f"{option} must be a plain folder name (no '/'), got {shown(name)}")
    return name


def safe_name(text: str, fallback: str = "run") -> str:
    """A folder name made from ``text`` (a spec's or dataset's name): letters, digits, '.', '-', '_'."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", str(text)).lstrip(".-")[:80]
    return name or fallback


def _make_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunError(f"{out}: exists and is not a folder; --out must name a folder") from None
    except OSError as exc:
        raise RunError(f"{out}: cannot create the folder ({exc.strerror})") from None


def create_marked(folder: Path, kind: str) -> None:
    """Make ``folder`` (it must not exist) and mark it as cnnlab's ``kind`` ('run' or 'comparison').

    Should the marker fail to be written, the empty folder is removed again.
    """
    from cnnlab.version import __version__

    folder.mkdir()  # 0777 less the umask; FileExistsError for the caller
    try:
        write_json(folder / MARKER, {"made_by": "cnnlab", "kind": kind, "version": __version__,
                                     "created": datetime.now(UTC).isoformat(timespec="seconds")})
    except BaseException:
        folder.rmdir()
        raise


def is_marked(folder: Path, kind: str) -> bool:
    """Whether cnnlab made ``folder`` as a ``kind``: its marker is a regular file that says so."""
    marker = Path(folder) / MARKER
    try:
        if not stat.S_ISREG(os.lstat(marker).st_mode):
            return False
        record = parse_json(read_regular(marker, 4096, RunError), str(marker), RunError)
    except (OSError, ValueError, CnnlabError):
        return False
    return isinstance(record, dict) and record.get("made_by") == "cnnlab" and record.get("kind") == kind


def require_run(run_dir: Path, link_ok: bool = True) -> Path:
    """``run_dir`` if cnnlab made it as a run; else a RunError saying it is left alone."""
    run_dir = Path(run_dir)
    if not link_ok and run_dir.is_symlink():
        raise RunError(f"{run_dir}: is a symbolic link; cnnlab never adopts, empties or deletes it")
    if not run_dir.is_dir():
        why = ("a file, not a folder: a model file (model.save) loads with cnnlab.load_model and exports with "
               "cnnlab export" if run_dir.is_file() else "no such folder")
        raise RunError(f"{run_dir}: not a cnnlab run directory ({why})")
    if not is_marked(run_dir, "run"):
        raise RunError(f"{run_dir}: not a cnnlab run directory (no {MARKER} marker: cnnlab did not make it, "
                       "so it never writes into, empties or deletes it)")
    return run_dir


def new_run_dir(out: Path, base: str, explicit: bool) -> Path:
    """A fresh, marked directory under ``out``; an explicit name that exists is an error, never reused."""
    out = Path(out)
    _make_out(out)
    candidate, suffix = out / base, 1
    while True:
        try:
            create_marked(candidate, "run")
            return candidate
        except FileExistsError:
            if explicit:
                hint = (f"continue it with --resume {candidate}" if is_marked(candidate, "run")
                        else "cnnlab did not make it and leaves it alone")
                raise RunError(f"{candidate}: run directory exists; pick another --name, or {hint}") from None
            candidate, suffix = out / f"{base}-{suffix}", suffix + 1
        except OSError as exc:
            raise RunError(f"{candidate}: cannot create the run directory ({exc.strerror})") from None


def clear_for_restart(run_dir: Path) -> list[str]:
    """Remove the records of an attempt that died before its first checkpoint (config stays)."""
    return remove_files(run_dir, RESTART_FILES)


def discard_run(run_dir: Path) -> None:
    """Remove a run that failed before its first checkpoint: cnnlab's files, then the folder if empty.

    Anything else in it (a user's file, a link) stays, and so does the marker then.
    """
    remove_files(run_dir, RUN_FILES)
    if {entry.name for entry in Path(run_dir).iterdir()} == {MARKER}:
        remove_files(run_dir, (MARKER,))
        os.rmdir(run_dir)


def open_dataset(dataset: str, options: dict):
    """The dataset a run names, loaded with the options it was given."""
    from cnnlab.data import load_dataset

    return load_dataset(dataset, **options)


def write_json(path: Path, data, root: Path | None = None) -> Path:
    """``data`` as indented JSON, through the one write helper (``root``: the run or comparison folder)."""
    path = Path(path)
    return write_file(path, (json.dumps(data, indent=2) + "\n").encode(), root=root or path.parent)


def write_run_file(run_dir: Path, name: str, content: bytes) -> Path:
    """A file cnnlab adds to a finished run (a confusion matrix), in a run folder it made."""
    return write_file(require_run(run_dir) / name, content, root=run_dir)


def read_text(path: Path, what: str = "record") -> str:
    """A run's text record (regular file, size-capped, UTF-8); errors name it."""
    try:
        return read_regular(path, MAX_RECORD_BYTES, RunError, what).decode("utf-8")
    except UnicodeDecodeError:
        raise RunError(f"{path}: not UTF-8 text; damaged") from None


def read_json(path: Path) -> dict:
    """A run's JSON record (an object); a missing, unreadable or damaged one is a RunError naming it."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"{path.parent}: not a cnnlab run directory (no {path.name})")
    data = parse_json(read_text(path), str(path), RunError)  # malformed or nested too deeply: one line
    if not isinstance(data, dict):
        raise RunError(f"{path}: damaged (not a JSON object)")
    return data


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    """metrics.csv from the history (rewritten whole, so it always matches the checkpoint)."""
    lines = [",".join(METRIC_COLUMNS)]
    lines += [",".join("" if r.get(c) is None else f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c])
                       for c in METRIC_COLUMNS) for r in history]
    write_file(Path(run_dir) / "metrics.csv", ("\n".join(lines) + "\n").encode(), root=run_dir)


def read_metrics(run_dir: Path) -> list[dict]:
    """metrics.csv as one dict per epoch (every value a float; empty cells None)."""
    path = Path(run_dir) / "metrics.csv"
    try:  # csv.Error: a cell past the csv module's field limit, a stray NUL
        reader = csv.DictReader(io.StringIO(read_text(path)))
        if not set(METRIC_COLUMNS) <= set(reader.fieldnames or ()):
            raise RunError(f"{path}: damaged (its columns are not {', '.join(METRIC_COLUMNS)})")
        return [{k: (float(v) if v else None) for k, v in row.items()} for row in reader]
    except (TypeError, ValueError, csv.Error):
        raise RunError(f"{path}: damaged (a cell is not a number)") from None
