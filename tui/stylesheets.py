"""A stylesheet that parses each theme's rules once.

Textual substitutes the theme's colour variables while it parses, so a theme switch (`t`)
reparses every rule of every widget (~15 % of the key's cost) before it restyles and
repaints the screen. The rules depend only on the variables and the sources, so the parse
of a combination already seen is reused: the second round of `t` skips it, and the room
parses the next theme's ahead (:meth:`ThemeStylesheet.prepare`, when idle), so the first
round does too.
"""

from __future__ import annotations

from typing import Any

from textual.css.stylesheet import Stylesheet


class ThemeStylesheet(Stylesheet):
    """Textual's stylesheet, with :meth:`reparse` remembered per (variables, sources)."""

    def __init__(self, *, variables: dict[str, str] | None = None) -> None:
        super().__init__(variables=variables)
        self._parsed: dict[Any, tuple[list[Any], dict[Any, Any]]] = {}

    def _key(self, variables: dict[str, str]) -> Any:
        return (tuple(sorted(variables.items())), tuple(self.source.items()))

    def prepare(self, variables: dict[str, str]) -> bool:
        """Parse the rules for ``variables`` (another theme's) ahead of their use, without
        touching the rules in force; False when they were parsed already."""
        key = self._key(variables)
        if key in self._parsed:
            return False
        fresh = Stylesheet(variables=variables)
        for read_from, (css, is_defaults, tie_breaker, scope) in self.source.items():
            fresh.add_source(
                css,
                read_from=read_from,
                is_default_css=is_defaults,
                tie_breaker=tie_breaker,
                scope=scope,
            )
        fresh.parse()
        self._parsed[key] = (fresh.rules, dict(fresh.source))
        return True

    def reparse(self) -> None:
        key = self._key(self._variables)
        cached = self._parsed.get(key)
        if cached is None:
            super().reparse()
            self._parsed[key] = (self._rules or [], dict(self.source))
            return
        self._rules, source = cached
        self.source = dict(source)
        self._rules_map = None
        self._require_parse = False
