"""Command templates: ``{{name}}`` placeholders, shell syntax untouched, values inert.

Every filled command is run by a real /bin/sh: a value that could break out of its word
would create the marker file."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from backend.config import STEP_PLACEHOLDERS, ConfigError, parse_config
from backend.recipes import RECIPES
from backend.shell import TemplateError, fill, in_dir, template_problems

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ["'$(touch {m})'", '"; touch {m}; "', "$(touch {m})", "`touch {m}`", "a b\nc; touch {m}"]


def sh(command: str) -> str:
    return subprocess.run(
        ["/bin/sh", "-c", command], capture_output=True, text=True, timeout=10, check=False
    ).stdout


def base_config(**extra: object) -> dict[str, object]:
    cfg: dict[str, object] = {
        "portal": {"repository": "/srv/repo.git", "deploy_path": "/srv/portal"},
        "hosts": [{"name": "web-1", "address": "127.0.0.1"}],
    }
    cfg.update(extra)
    return cfg


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_value_stays_one_inert_word(tmp_path: Path, value: str) -> None:
    marker = tmp_path / "owned"
    hostile = value.format(m=marker)
    out = sh(fill("printf '%s\\n' {{backend}} | cat", backend=hostile))
    assert not marker.exists()
    assert out == hostile + "\n"


def test_shell_syntax_passes_through_untouched() -> None:
    template = "X=1; echo ${X} $(echo sub) {a,b} && printf 'a b\\n' | awk '{ print $2 }' {{file}}"
    filled = fill(template, file="/tmp/x y")
    assert filled == template.replace("{{file}}", "'/tmp/x y'")
    assert "${X}" in filled and "awk '{ print $2 }'" in filled


def test_shell_syntax_runs_where_the_old_braces_crashed() -> None:
    """``${USER}`` and ``awk '{ print }'`` raised KeyError mid-phase with ``str.format``."""
    out = sh(fill("V=ok; echo ${V} $(echo sub) | awk '{ print $2, $1 }'"))
    assert out == "sub ok\n"


@pytest.mark.parametrize(
    "template",
    [
        "echo '{{backend}}'",
        'echo "{{backend}}"',
        "echo $'x {{backend}}'",
        "echo 'disable server portal/{{backend}}' | socat stdio /run/haproxy.sock",
        "cat <<EOF\n{{backend}}\nEOF",
    ],
)
def test_a_placeholder_inside_quotes_is_refused(template: str) -> None:
    problems = template_problems(template, {"backend"})
    assert problems and "inside quotes" in problems[0]
    with pytest.raises(TemplateError, match="inside quotes"):
        fill(template, backend="web-1")


def test_an_unknown_placeholder_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(TemplateError, match=r"unknown placeholder \{\{relase\}\}.*\{\{file\}\}"):
        fill("echo {{relase}}", file="x")


def test_env_names_must_be_identifiers() -> None:
    with pytest.raises(TemplateError, match="identifiers"):
        in_dir("/srv", "true", {"A=1; touch /tmp/x; B": "v"})
    assert in_dir("/srv", "true", {"APP_ENV": "prod; x"}) == (
        "cd /srv && export APP_ENV='prod; x' && true"
    )


def test_recipe_defaults_use_known_placeholders_only() -> None:
    for recipe, steps in RECIPES.items():
        for step, template in steps.items():
            known = STEP_PLACEHOLDERS.get(step, frozenset())
            assert template_problems(template, known) == [], (recipe, step)
            assert not re.search(r"(?<!\{)\{[a-z_]+\}(?!\})", template), (recipe, step)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"commands": {"migrate": "php artisan migrate {{release}}"}}, "commands.migrate"),
        ({"commands": {"db_dump": "dump > '{{file}}'"}}, "commands.db_dump"),
        ({"commands": {"install": "make {{relese}}"}}, "commands.install"),
        (
            {
                "load_balancer": {
                    "kind": "command",
                    "drain_command": "echo 'disable server portal/{{backend}}' | socat x y",
                    "enable_command": "true {{backend}}",
                }
            },
            "load_balancer.drain_command",
        ),
    ],
)
def test_config_load_refuses_bad_templates_naming_the_key(
    extra: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(base_config(**extra))
    assert any(p.startswith(expected + ":") for p in err.value.problems), err.value.problems


def test_config_load_accepts_shell_syntax_and_a_lone_brace() -> None:
    config = parse_config(
        base_config(commands={"build": "echo ${HOME} { ; awk '{ print }' {{release}}"})
    )
    assert "awk" in config.commands["build"]


def test_env_key_that_is_not_an_identifier_is_refused() -> None:
    cfg = base_config()
    cfg["portal"] = {**cfg["portal"], "env": {"X=1;touch /tmp/x;Y": "v"}}  # type: ignore[dict-item]
    with pytest.raises(ConfigError) as err:
        parse_config(cfg)
    assert err.value.problems[0].startswith("portal.env:")


def toml_blocks() -> list[tuple[str, int, str]]:
    out = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, block in enumerate(re.findall(r"```toml\n(.*?)```", doc.read_text(), re.S)):
            out.append((doc.name, i, block))
    return out


@pytest.mark.parametrize(("doc", "index", "block"), toml_blocks(), ids=lambda v: str(v)[:20])
def test_every_toml_block_in_the_docs_parses_and_validates(
    doc: str, index: int, block: str
) -> None:
    """Complete configs validate as they are; fragments validate inside a minimal config,
    so every documented template and key is checked by the same loader the CLI uses."""
    raw = tomllib.loads(block)
    if "portal" not in raw or "hosts" not in raw:
        merged = base_config()
        for key, value in raw.items():
            merged[key] = (
                {**merged[key], **value}  # type: ignore[dict-item]
                if isinstance(value, dict) and isinstance(merged.get(key), dict)
                else value
            )
        raw = merged
    parse_config(raw, f"{doc} block {index}")


def test_a_runtime_api_command_is_safe_with_a_hostile_backend(tmp_path: Path) -> None:
    """The `command` balancer's usual shape (the README's example before `kind = "haproxy"`
    replaced it): the backend name is one quoted word, whatever it holds."""
    marker = tmp_path / "owned"
    template = "printf 'disable server portal/%s\\n' {{backend}} | cat"
    assert not template_problems(template, {"backend"})
    out = sh(fill(template, backend=f"'$(touch {marker})'"))
    assert not marker.exists()
    assert out == f"disable server portal/'$(touch {marker})'\n"


def unquoted_interpolations(path: Path, allowed: set[str]) -> list[str]:
    """Every ``{expr}`` of an f-string in ``path`` that is not ``q(...)``, a name bound to
    ``q(...)``, a constant, or in ``allowed``; f-strings that are themselves an argument
    of ``q`` are messages being quoted, not shell text."""
    import ast

    tree = ast.parse(path.read_text())
    inside_q = {  # messages quoted as a whole, and path pieces (quoted once joined)
        id(arg)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (getattr(node.func, "id", "") == "q" or ast.unparse(node.func) == "posixpath.join")
        for arg in node.args
    }
    found: list[str] = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef):
            continue
        quoted: set[str] = set()
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign):
                pairs = (
                    zip(node.targets[0].elts, node.value.elts, strict=False)
                    if isinstance(node.targets[0], ast.Tuple) and isinstance(node.value, ast.Tuple)
                    else [(node.targets[0], node.value)]
                )
                for target, value in pairs:
                    if (
                        isinstance(target, ast.Name)
                        and isinstance(value, ast.Call)
                        and getattr(value.func, "id", "") == "q"
                    ):
                        quoted.add(target.id)
        for node in ast.walk(fn):
            if not isinstance(node, ast.JoinedStr) or id(node) in inside_q:
                continue
            for value in node.values:
                if not isinstance(value, ast.FormattedValue):
                    continue
                expr = value.value
                text = ast.unparse(expr)
                ok = (
                    (isinstance(expr, ast.Call) and getattr(expr.func, "id", "") == "q")
                    or (isinstance(expr, ast.Name) and (expr.id in quoted or expr.id.isupper()))
                    or text in allowed
                )
                if not ok:
                    found.append(f"{path.name}:{node.lineno} {fn.name}: {{{text}}}")
    return found


def test_shell_text_is_built_only_from_quoted_values() -> None:
    """The grep-level rule, enforced: in the modules that build shell commands, no f-string
    interpolates a value that has not gone through ``q``."""
    fragments = {  # shell fragments, themselves built only from q()-quoted values
        "self._lock_age()",
        "self.update_mirror(repository)",  # q(self.mirror), q(repository)
        "replace",  # q(marker), q(current), q(rel)
        "guard",  # " ".join(q(k) for k in keep)
        "present",  # ensure_dirs: " && ".join of [ -d q(p) ]
        "' '.join((q(p) for p in paths))",
        "ensure_dirs(self.meta)",  # its words through q()
        "self._read_owner()",  # q(owner.json)
        "words",  # _tar_gz: " ".join of q(p)
        "self.read_current('c')",  # its words through q()
        "self.read_current('live')",
    }
    layout = unquoted_interpolations(ROOT / "backend" / "engine" / "layout.py", fragments)
    assert layout == []
    paths = unquoted_interpolations(ROOT / "backend" / "hostpaths.py", {"self._lock_age()", "var"})
    assert paths == []  # the lock's read command, shared with the checks
    shell_text = [  # k: checked to be an identifier first; bad: the error message
        f
        for f in unquoted_interpolations(ROOT / "backend" / "shell.py", {"k", "bad"})
        if " exports:" in f or " in_dir:" in f
    ]
    assert shell_text == []
