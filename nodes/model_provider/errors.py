"""Exceptions of the model provider. Each names what was wrong and what would be right."""

from collections.abc import Sequence

from sustainml.exceptions import ConfigError, InvalidProblem

__all__ = ["UnknownModel", "CatalogueError"]


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
    """Raised when the catalogue file is malformed; the message names the file, the entry and the field."""
