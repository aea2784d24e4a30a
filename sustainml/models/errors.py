"""Exceptions of the model provider. Each names what was wrong and what would be right."""

from collections.abc import Sequence

from sustainml.exceptions import ConfigError, InvalidProblem

__all__ = ["UnknownModel", "CatalogueError", "LibraryMismatch", "InvalidBuilder"]


class UnknownModel(InvalidProblem):
    """Raised when a model name is not in the catalogue or the zoo; the message lists the known names.

    A subclass of ``InvalidProblem`` because the name usually comes from a problem's
    ``candidate_models``, and the fix is on the side of whoever wrote the problem.
    """

    def __init__(self, name: str, known: Sequence[str], where: str = "the model catalogue") -> None:
        self.name = name
        self.known = tuple(known)
        super().__init__(f"unknown model {name!r}: {where} knows {', '.join(self.known)}")


class CatalogueError(ConfigError):
    """Raised when a catalogue file is malformed; the message names the file, the entry and the field."""


class LibraryMismatch(InvalidProblem):
    """Raised when a model is built with the wrong library's builder: a scikit-learn estimator asked of
    ``zoo.build``, or a torch model of ``zoo.build_estimator``; the message names the right one."""

    def __init__(self, name: str, library: str, use: str) -> None:
        self.name = name
        self.library = library
        what = "a scikit-learn model" if library == "sklearn" else f"a {library} model"
        super().__init__(f"{name} is {what}: build it with zoo.{use}({name!r})")


class InvalidBuilder(InvalidProblem):
    """Raised when a ``ModelBuilder`` that came in a message cannot be read or is not on the whitelist;
    the message names the field (``builder.kind``, ``builder.name``, ``builder.settings.d_layers``), what
    it held and what would be right. Its ``field`` attribute holds that field's name."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"field '{field}': {problem}")
