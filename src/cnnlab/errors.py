"""Errors cnnlab reports to users as one-line messages rather than tracebacks."""


class CnnlabError(Exception):
    """Base class of errors caused by input: a spec, a dataset, an argument, a file."""


class SpecError(CnnlabError, ValueError):
    """An invalid spec; the message names the source, the layer and the field."""
