"""The comparison's report: report.md with its figures, and report.html, one self-contained page.

It sits above the experiment, whose findings it shows (:mod:`cnnlab.experiment.findings`
computes them), and beside the console output in :mod:`cnnlab.presenters`, whose table and
plots it reuses. ``write_report`` is the way in; each section is a module of its own.
"""

from cnnlab.report.writer import write_report

__all__ = ["write_report"]
