"""Console output: tables, progress lines, summaries, plots and the TensorBoard writer.

Presenters show what the floors below them computed and compute nothing themselves; the
comparison's HTML/Markdown report, which sits above the experiment, is :mod:`cnnlab.report`.
"""
