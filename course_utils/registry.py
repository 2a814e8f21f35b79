"""The registry that turns the text a user writes (``greedy``, ``growth:0.25``, ``knn:k=4``) into a part.

On the ground floor so that every kind of part uses it without depending on another: the models
(:mod:`course_utils.ml.registry`) and the campaign's parts (``campaign.acquisition``,
``retraining``, ``arrival``, ``stopping``, ``simulators``) each keep one :class:`Registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """The names of one kind of part and the factories that make them from a user's string.

    ``make("name:arguments")`` finds ``name`` (case and spaces ignored) and calls its factory.
    A factory registered with ``options`` takes ``key=value`` arguments (``converged:window=8,
    delta=0.01``): each value goes through its converter (a ``ValueError`` from it becomes the
    one-line error), and the factory is called with keywords. Otherwise the factory receives the
    text after the colon as it is and the whole spelling, for its messages (``growth:0.25`` ->
    ``("0.25", "growth:0.25")``).
    """

    def __init__(self, kind: str, *, error: type[ValueError] = ValueError,
                 unknown: str = "{kind} {text!r} is unknown; choose one of {choices}"):
        self.kind = kind
        self.error = error
        #: The one line for an unknown name; fields: kind, text, name, choices.
        self.unknown = unknown
        self._factories: dict[str, Callable[..., T]] = {}
        self._spellings: dict[str, str] = {}
        self._options: dict[str, Mapping[str, Callable[[str], Any]] | None] = {}
        self._required: dict[str, tuple[str, ...]] = {}
        self._bare: set[str] = set()

    def register(self, name: str, *, spelling: str | None = None,
                 options: Mapping[str, Callable[[str], Any]] | None = None,
                 required: Sequence[str] = (), bare: bool = False
                 ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: ``factory`` makes the part spelled ``name`` (shown to users as
        ``spelling``, e.g. ``count:N``); ``bare``: the name takes nothing after it (anything
        after it makes an unknown name)."""
        def add(factory: Callable[..., T]) -> Callable[..., T]:
            self._factories[name] = factory
            self._spellings[name] = spelling or name
            self._options[name] = options
            self._required[name] = tuple(required)
            if bare:
                self._bare.add(name)
            return factory
        return add

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._factories)

    @property
    def spellings(self) -> tuple[str, ...]:
        return tuple(self._spellings.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.strip().lower() in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)

    def spelling(self, name: str) -> str:
        return self._spellings[name]

    def factory(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name`` (for parts made from context, not from a
        spelling: a simulator takes the campaign's engine, workers and space)."""
        key = str(name).strip().lower()
        if key not in self._factories:
            raise self._unknown(str(name).strip(), str(name).strip())
        return self._factories[key]

    def _unknown(self, text: str, name: str) -> ValueError:
        return self.error(self.unknown.format(kind=self.kind, text=text, name=name,
                                              choices=", ".join(self.spellings)))

    def make(self, text: str) -> T:
        """The part ``text`` spells; :attr:`error` (one line naming the bad part) if none."""
        spelled = text.strip()
        head, _, arguments = spelled.partition(":")
        name = head.strip().lower()
        if name not in self._factories or (name in self._bare and arguments.strip()):
            raise self._unknown(spelled, head.strip())
        if self._options[name] is None:
            return self._factories[name](arguments.strip(), spelled)
        where = f"{self.kind} {spelled!r}"
        return self.build(name, where=where, **self.key_values(name, arguments, where))

    def build(self, name: str, *, where: str | None = None, **options: Any) -> T:
        """The part ``name`` with keyword ``options`` (already typed); checks names and required."""
        where = where or f"{self.kind} {name!r}"
        allowed = self._options.get(name) or {}
        unknown = [k for k in options if k not in allowed]
        if unknown:
            takes = ", ".join(allowed) or "no options"
            raise self.error(f"{where}: unknown option {unknown[0]!r} for {name} (takes {takes})")
        missing = [k for k in self._required[name] if k not in options]
        if missing:
            raise self.error(f"{where}: {name} needs {', '.join(f'{k}=...' for k in missing)} "
                             f"({self._spellings[name]})")
        return self._factories[name](**options)

    def key_values(self, name: str, arguments: str, where: str) -> dict[str, Any]:
        """``key=value,...`` as typed keywords, each converted by the option's converter."""
        allowed = self._options[name] or {}
        options: dict[str, Any] = {}
        for part in (p.strip() for p in arguments.split(",")) if arguments.strip() else ():
            key, eq, value = (s.strip() for s in part.partition("="))
            if not eq or not key or not value:
                raise self.error(f"{where}: {part!r} is not key=value")
            if key not in allowed:
                takes = ", ".join(allowed) or "no options"
                raise self.error(f"{where}: unknown option {key!r} for {name} (takes {takes})")
            if key in options:
                raise self.error(f"{where}: {key} is given twice")
            try:
                options[key] = allowed[key](value)
            except ValueError as err:
                raise self.error(f"{where}: {key}={value} {err}") from None
        return options
