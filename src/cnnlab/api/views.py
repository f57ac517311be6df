"""What a model shows of its network without training: layers, parameters, summary, spec (no torch)."""

from __future__ import annotations

from pathlib import Path

from cnnlab.net.presets import preset_name
from cnnlab.net.spec import SpecError


class NetworkViews:
    """Keras' ways of looking at a model: ``get_layer``, ``count_params``, ``summary``; and the network as a
    spec (``to_yaml``, ``save_spec``). Needs ``self.spec``, ``self._functional`` and ``self.layers``
    (:mod:`cnnlab.api.layer_objects`)."""

    @property
    def name(self) -> str:
        return self.spec.name

    def get_layer(self, name: str):
        """The layer called ``name`` (as in Keras)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise SpecError(f"model '{self.name}' has no layer '{name}'; layers: "
                        + ", ".join(layer.name for layer in self.layers))

    def count_params(self) -> int:
        """All parameters, batchnorm statistics included, as Keras counts them."""
        from cnnlab.net.resolve import summarize

        return summarize(self.spec).total_params

    def to_yaml(self) -> str:
        """The network as a spec file's text (``cnnlab summary``/``train`` read it)."""
        import yaml

        return yaml.safe_dump(self.spec.to_dict(), sort_keys=False)

    def save_spec(self, path: str | Path) -> Path:
        """Write :meth:`to_yaml` to ``path`` (refusing to replace an existing file)."""
        path = Path(path)
        try:
            with open(path, "x", encoding="utf-8") as handle:
                handle.write(self.to_yaml())
        except FileExistsError:
            raise SpecError(f"{path}: exists already; choose another file name") from None
        except OSError as exc:
            raise SpecError(f"{path}: cannot write the spec: {exc.strerror}") from None
        return path

    def _default_input(self):
        from cnnlab.net.presets import default_input

        name = preset_name(self.spec)
        return default_input(name) if name else None

    def summary(self) -> None:
        """Print the Keras-style summary (needs an input shape: from the spec or a fit)."""
        print(self.summary_text(), end="")

    def summary_text(self, line_length: int | None = None, show_trainable: bool = False) -> str:
        """The Keras-style summary table as text (``line_length``: the table's width; ``show_trainable``: a
        column saying which layers train; Keras' arguments)."""
        from cnnlab.net.resolve import summarize
        from cnnlab.presenters.summary_table import format_summary

        return format_summary(summarize(self.spec), line_length=line_length, show_trainable=show_trainable)

    def __repr__(self) -> str:
        try:
            size = f"{len(self.spec.layers)} layers, {self.count_params():,} parameters"
        except SpecError:  # no layers yet, or no input shape to count with
            size = "not built"
        trained = "trained" if getattr(self, "history", None) is not None else "not trained"
        return f"<cnnlab.Model '{self.name if self._spec is not None else '-'}': {size}, {trained}>"

    def _repr_html_(self) -> str:
        """Jupyter shows the summary table rather than a repr."""
        import html

        try:
            return f"<pre>{html.escape(self.summary_text())}</pre>"
        except SpecError as exc:
            return f"<pre>{html.escape(repr(self))}\n{html.escape(str(exc))}</pre>"
