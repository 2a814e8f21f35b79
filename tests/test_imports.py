"""The import graph of `course_utils` has no cycles and no hidden shortcuts.

Parsed with `ast`, never imported, so the test is fast and sees imports
inside functions too. Modules are named by their dotted path inside the
package (`records.ledger`, `campaign.runner`, `ml.knn`); a package's `__init__.py`
is a module too (`__init__`, `campaign.__init__`). Five rules keep the
engine's parts honest:

- no import cycle between `course_utils` modules (a cycle is what forces
  the imports-inside-functions that hide it). Imports under
  `if TYPE_CHECKING:` never run (annotations only) and are not edges. `from course_utils.campaign
  import engine` imports `campaign.runner`; a name taken through a
  subpackage's lazy exports (`course_utils.lazy_exports`) imports its home
  module; importing a submodule also runs its packages' `__init__`s;
- no private name (`_x`) taken from another `course_utils` module: a shared
  helper is public in its home module;
- an import of a `course_utils` module inside a function must say on its
  line or the line above `# deferred: <measured reason>`, so lazy imports
  justify themselves (Parsl, matplotlib, numba, xtb cost time at import);
  cheap ones belong at the top of the module;
- modules inside the package take a name from its home module, never
  through a subpackage's lazy exports (those are for notebooks and users),
  so the graph a reader sees is the graph that runs;
- imports point down the layers of DESIGN.md section 7 (`LAYERS`, lowest
  first), never up, inside functions too (a deferred import still makes the
  lower module depend on the higher one); a package's `__init__` that Python
  runs on the way is not counted (the faces import lazily).

A sixth rule keeps each part's text parsed in one place: the part parsers
(`PART_PARSERS`, and a `*_REGISTRY`'s `make`/`build`/`factory`) are called
only in `campaign.build`, in the module defining them, and in the few modules of
`PARSED_ELSEWHERE`, each with its reason.

Every rule is also run on a small fake package with one offence, so each
check is seen to fail when it should.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACKAGE = "course_utils"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE

# Cycles known and not yet broken, each as the sorted modules of its component. Keep it empty.
KNOWN_CYCLES: list[list[str]] = []

# The layers, lowest first; a module may import its own layer and those below. A pattern ending
# in ".*" is a subpackage (its modules and its `__init__`). A module named exactly wins over a
# pattern, so `campaign.stopping` is a part while the rest of `campaign` is above it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground floor", ("__init__", "chemistry", "search_space", "configs", "parsl_guard",
                      "mpi_cheap", "resilience", "registry", "cache", "status")),
    # The models know nothing of runs or records; the Parsl apps wrap them and the chemistry
    # (the ground-truth build and the simulators both submit apps).
    ("models and apps", ("ml.*", "apps")),
    ("files and measurements", ("records", "records.*", "ground_truth.*", "figures.*")),
    # learning curves measure the models against the shipped table: a study of the models
    ("parts", ("ml.learning_curves", "campaign.parts", "campaign.simulators",
               "campaign.acquisition", "campaign.retraining", "campaign.arrival",
               "campaign.stopping", "campaign.trust")),
    ("campaign", ("campaign.*",)),
    ("entry points", ("__main__", "widgets", "grading", "grading_*", "polaris.*", "studies.*",
                      "figures.command")),
]

# Upward imports known and not yet removed: "importer -> imported", each with why. Keep it empty.
KNOWN_UPWARD: dict[str, str] = {}


# The functions that turn a part's text into the part. Calling them is building a part, which
# campaign.build does once for a campaign's parameters (`.validate()` and `.parts()` go through it).
PART_PARSERS = ("parse_model", "make_model", "make_acquisition", "parse_stop_rule", "parse_arrival",
                "parse_retrain_policy", "make_simulator")
REGISTRY_MAKERS = ("make", "build", "factory")  # on a module-level `*_REGISTRY`
BUILDER = "campaign.build"
# Modules that parse a part's text outside the builder, each with why. Keep it short.
PARSED_ELSEWHERE: dict[str, str] = {
    "ml.learning_curves": "compares models by their spelling on learning curves, with no "
                          "campaign (and ml sits below campaign.build)",
}


@dataclass(frozen=True)
class Import:
    """One `import`/`from ... import` statement naming course_utils modules."""

    module: str  # importing module, e.g. "campaign.runner"
    targets: tuple[str, ...]  # course_utils modules it runs (its packages' __init__s included)
    names: tuple[tuple[str, str], ...]  # (home module, name) pairs imported
    through_init: tuple[tuple[str, str, str], ...]  # (subpackage, name, home) via lazy exports
    line: int
    in_function: bool
    deferred_comment: bool
    type_only: bool = False  # under `if TYPE_CHECKING:`: never runs


@dataclass
class Package:
    """The modules of a package directory and each subpackage's lazy exports."""

    root: Path
    files: dict[str, Path] = field(default_factory=dict)  # module id -> file
    exports: dict[str, dict[str, str]] = field(default_factory=dict)  # package id -> name -> home id

    @classmethod
    def read(cls, root: Path) -> Package:
        package = cls(root)
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            package.files[".".join(parts)] = path
        for module_id, path in package.files.items():
            if module_id.endswith("__init__"):
                package.exports[package_of(module_id)] = lazy_export_homes(path, package_of(module_id))
        return package

    def init_of(self, package_id: str) -> str:
        """Module id of a package's `__init__` ("" is the top-level package)."""
        return f"{package_id}.__init__" if package_id else "__init__"

    def is_package(self, package_id: str) -> bool:
        return self.init_of(package_id) in self.files

    def inits_on_the_way(self, module_id: str) -> list[str]:
        """The `__init__`s Python runs before a module: each enclosing package's."""
        parts = module_id.split(".")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        return [self.init_of(".".join(parts[:i])) for i in range(len(parts))
                if self.is_package(".".join(parts[:i]))]

    def module_for(self, dotted: str) -> str | None:
        """Module id for a dotted name below course_utils ("" is the package itself)."""
        if self.is_package(dotted):
            return self.init_of(dotted)
        return dotted if dotted in self.files else None


def package_of(init_id: str) -> str:
    return init_id.removesuffix("__init__").removesuffix(".")


def lazy_export_homes(path: Path, package_id: str) -> dict[str, str]:
    """name -> home module id from an `__init__`'s `lazy_exports(__name__, {...})` call."""
    homes: dict[str, str] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "lazy_exports" and len(node.args) == 2
                and isinstance(node.args[1], ast.Dict)):
            for key, value in zip(node.args[1].keys, node.args[1].values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(value, ast.Constant):
                    homes[key.value] = f"{package_id}.{value.value}" if package_id else value.value
    return homes


def _has_deferred_comment(lines: list[str], line: int) -> bool:
    here = lines[line - 1]
    above = lines[line - 2] if line >= 2 else ""
    return "# deferred:" in here or above.strip().startswith("# deferred:")


def _absolute_base(node: ast.ImportFrom, module_id: str) -> str | None:
    """Dotted name below course_utils that a `from X import ...` reads ("" = the package)."""
    if node.level:
        here = module_id.split(".")[:-1]  # the importing module's package
        if node.level > 1:
            here = here[: len(here) - (node.level - 1)]
        return ".".join(here + ([node.module] if node.module else []))
    base = node.module or ""
    if base == PACKAGE:
        return ""
    if base.startswith(PACKAGE + "."):
        return base[len(PACKAGE) + 1:]
    return None


def _resolve_from(node: ast.ImportFrom, module_id: str, package: Package
                  ) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, str, str]]]:
    """Targets, (home, name) pairs and names taken through lazy exports, of a `from` import."""
    base = _absolute_base(node, module_id)
    if base is None:
        return [], [], []
    base_module = package.module_for(base)
    if base_module is None:
        return [], [], []
    targets = package.inits_on_the_way(base_module) + [base_module]
    names: list[tuple[str, str]] = []
    through_init: list[tuple[str, str, str]] = []
    for alias in node.names:
        submodule = package.module_for(f"{base}.{alias.name}" if base else alias.name)
        if package.is_package(base) and submodule is not None:
            targets.append(submodule)
            continue
        home = package.exports.get(base, {}).get(alias.name) if package.is_package(base) else None
        if home is not None and home in package.files:
            targets.append(home)
            names.append((home, alias.name))
            through_init.append((base or PACKAGE, alias.name, home))
        else:
            names.append((base_module, alias.name))
    return targets, names, through_init


def collect_imports(module_id: str, package: Package) -> list[Import]:
    path = package.files[module_id]
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source, filename=str(path))
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool, type_only: bool = False) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            typing_block = type_only or (
                isinstance(child, ast.If) and isinstance(child.test, ast.Name)
                and child.test.id == "TYPE_CHECKING")
            targets: list[str] = []
            names: list[tuple[str, str]] = []
            through_init: list[tuple[str, str, str]] = []
            if isinstance(child, ast.Import):
                for alias in child.names:
                    parts = alias.name.split(".")
                    target = package.module_for(".".join(parts[1:])) if parts[0] == PACKAGE else None
                    if target is not None:
                        targets += package.inits_on_the_way(target) + [target]
            elif isinstance(child, ast.ImportFrom):
                targets, names, through_init = _resolve_from(child, module_id, package)
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(
                    Import(
                        module=module_id,
                        targets=tuple(dict.fromkeys(targets)),
                        names=tuple(names),
                        through_init=tuple(through_init),
                        line=child.lineno,
                        in_function=in_function,
                        deferred_comment=_has_deferred_comment(lines, child.lineno),
                        type_only=type_only,
                    )
                )
            visit(child, inside, typing_block)

    visit(tree, False)
    return found


def all_imports(package: Package) -> list[Import]:
    return [imp for m in sorted(package.files) for imp in collect_imports(m, package)]


def import_graph(package: Package) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in package.files}
    for imp in all_imports(package):
        if not imp.type_only:
            graph[imp.module].update(t for t in imp.targets if t != imp.module)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return [_one_cycle(graph, set(c)) for c in components]


def _one_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A concrete cycle a -> b -> ... -> a inside one component, for the message."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return sorted(component)


def module_aliases(tree: ast.AST, module_id: str, package: Package) -> dict[str, str]:
    """Local name -> module id, for every course_utils module bound to a name."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _absolute_base(node, module_id)
            if base is None or not package.is_package(base):
                continue
            for a in node.names:
                submodule = package.module_for(f"{base}.{a.name}" if base else a.name)
                if submodule is not None:
                    aliases[a.asname or a.name] = submodule
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                target = package.module_for(".".join(parts[1:])) if parts[0] == PACKAGE else None
                if a.asname and target is not None:
                    aliases[a.asname] = target
    return aliases


def private_attribute_uses(module_id: str, package: Package) -> list[tuple[int, str, str]]:
    """`x._y` where `x` is another course_utils module bound by an import."""
    tree = ast.parse(package.files[module_id].read_text(encoding="utf-8"))
    aliases = module_aliases(tree, module_id, package)
    return [
        (node.lineno, aliases[node.value.id], node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in aliases
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and aliases[node.value.id] != module_id
    ]


# --- the four rules, each a list of offences ---------------------------------------------------


def cycles(package: Package) -> list[list[str]]:
    return [c for c in find_cycles(import_graph(package)) if sorted(set(c)) not in KNOWN_CYCLES]


def private_imports(package: Package) -> list[str]:
    offences = []
    for imp in all_imports(package):
        for home, name in imp.names:
            if home == imp.module or not name.startswith("_") or name.startswith("__"):
                continue
            offences.append(f"{imp.module}:{imp.line} imports {home}.{name}")
    for module_id in sorted(package.files):
        for line, home, name in private_attribute_uses(module_id, package):
            offences.append(f"{module_id}:{line} uses {home}.{name}")
    return offences


def undeferred_imports(package: Package) -> list[str]:
    return [
        f"{imp.module}:{imp.line} imports {', '.join(t for t in imp.targets if '__init__' not in t)}"
        for imp in all_imports(package)
        if imp.in_function and imp.targets and not imp.deferred_comment
    ]


def layer_of(module_id: str, layers: list[tuple[str, tuple[str, ...]]] = LAYERS) -> int | None:
    """Index in `layers` of the module's name, else of the first pattern naming it (None: none)."""
    for index, (_, patterns) in enumerate(layers):
        if module_id in patterns:
            return index
    for index, (_, patterns) in enumerate(layers):
        for pattern in patterns:
            if pattern.endswith(".*"):
                if module_id.startswith(pattern[:-1]):
                    return index
            elif pattern.endswith("*"):
                if module_id.startswith(pattern[:-1]) and "." not in module_id:
                    return index
            elif module_id == pattern:
                return index
    return None


def modules_without_layer(package: Package) -> list[str]:
    return [m for m in sorted(package.files) if layer_of(m) is None]


def upward_imports(package: Package, known: dict[str, str] | None = None) -> list[str]:
    """`importer:line imports target (layer a above layer b)` for each import pointing up."""
    known = KNOWN_UPWARD if known is None else known
    offences = []
    for imp in all_imports(package):
        here = layer_of(imp.module)
        for target in imp.targets:
            there = layer_of(target)
            if (here is None or there is None or there <= here or target.endswith("__init__")
                    or f"{imp.module} -> {target}" in known):
                continue
            offences.append(f"{imp.module}:{imp.line} imports {target} "
                            f"({LAYERS[there][0]} is above {LAYERS[here][0]})")
    return offences


def imports_through_init(package: Package) -> list[str]:
    return [
        f"{imp.module}:{imp.line} takes {name} through {sub}.__init__ (import it from {home})"
        for imp in all_imports(package)
        for sub, name, home in imp.through_init
    ]


def _called_name(call: ast.Call, parsers: dict[str, str]) -> str | None:
    """The parser a call names (``parse_model(...)``, ``registry.parse_model(...)``,
    ``STOP_RULE_REGISTRY.make(...)``), or None."""
    func = call.func
    if isinstance(func, ast.Name):
        return parsers.get(func.id)
    if isinstance(func, ast.Attribute):
        if func.attr in PART_PARSERS:
            return func.attr
        if (func.attr in REGISTRY_MAKERS and isinstance(func.value, ast.Name)
                and func.value.id.endswith("_REGISTRY")):
            return f"{func.value.id}.{func.attr}"
    return None


def _defined_here(tree: ast.AST) -> set[str]:
    """Parsers a module defines (its functions of PART_PARSERS, its `*_REGISTRY` makers)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in PART_PARSERS:
            names.add(node.name)
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) else [])
        for target in targets:
            if isinstance(target, ast.Name) and target.id.endswith("_REGISTRY"):
                names.update(f"{target.id}.{m}" for m in REGISTRY_MAKERS)
    return names


def part_parses(package: Package) -> dict[str, list[str]]:
    """module -> `line: parser` for each call of a part parser it does not define."""
    found: dict[str, list[str]] = {}
    for module_id, path in sorted(package.files.items()):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parsers = {name: name for name in PART_PARSERS}  # local name -> parser
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                parsers.update({a.asname: a.name for a in node.names
                                if a.asname and a.name in PART_PARSERS})
        own = _defined_here(tree)
        named = ((node.lineno, _called_name(node, parsers)) for node in ast.walk(tree)
                 if isinstance(node, ast.Call))
        calls = [f"{line}: {name}" for line, name in sorted(
            (line, name) for line, name in named if name and name not in own)]
        if calls:
            found[module_id] = calls
    return found


def parts_parsed_outside_builder(package: Package,
                                 allowed: dict[str, str] | None = None) -> list[str]:
    """Part parsers called outside campaign.build (and their own modules and the allow-list)."""
    allowed = PARSED_ELSEWHERE if allowed is None else allowed
    return [f"{module_id}:{call} (build it in {BUILDER}: parameters.parts())"
            for module_id, calls in part_parses(package).items()
            if module_id != BUILDER and module_id not in allowed for call in calls]


# --- the real package ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def course_utils() -> Package:
    return Package.read(PACKAGE_DIR)


def test_the_parser_sees_the_package(course_utils: Package) -> None:
    assert len(course_utils.files) > 40
    assert {"__init__", "campaign.__init__", "campaign.runner", "ml.knn"} <= set(course_utils.files)
    assert course_utils.exports["campaign"]["Campaign"] == "campaign.runner"
    graph = import_graph(course_utils)
    assert "records.__init__" in graph["campaign.runner"]  # `from course_utils import records`
    assert "figures.style" in graph["studies.sweep"]  # `from course_utils.figures import style`
    assert "__init__" in graph["campaign.__init__"]  # lazy_exports lives in the top __init__


def test_known_cycles_are_still_cycles(course_utils: Package) -> None:
    """An allow-listed cycle that has been broken must leave the list."""
    found = [sorted(set(c)) for c in find_cycles(import_graph(course_utils))]
    assert all(known in found for known in KNOWN_CYCLES)


def test_no_import_cycles(course_utils: Package) -> None:
    found = cycles(course_utils)
    assert found == [], "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_no_private_names_across_modules(course_utils: Package) -> None:
    offences = private_imports(course_utils)
    assert offences == [], "private names used across modules:\n" + "\n".join(offences)


def test_imports_inside_functions_say_why(course_utils: Package) -> None:
    offences = undeferred_imports(course_utils)
    assert offences == [], (
        "imports inside functions need a '# deferred: <reason>' comment "
        "(or belong at the top of the module):\n" + "\n".join(offences)
    )


def test_modules_import_names_from_their_home(course_utils: Package) -> None:
    offences = imports_through_init(course_utils)
    assert offences == [], "\n".join(offences)


def test_every_module_has_a_layer(course_utils: Package) -> None:
    assert modules_without_layer(course_utils) == [], "add each new module to LAYERS"


def test_imports_point_down_the_layers(course_utils: Package) -> None:
    offences = upward_imports(course_utils)
    assert offences == [], "imports pointing up the layers:\n" + "\n".join(offences)


def test_known_upward_imports_are_still_there(course_utils: Package) -> None:
    """An allow-listed upward import that has been removed must leave the list."""
    edges = {f"{imp.module} -> {t}" for imp in all_imports(course_utils) for t in imp.targets}
    assert [k for k in KNOWN_UPWARD if k not in edges] == []


def test_the_named_upward_imports_are_gone(course_utils: Package) -> None:
    """Issue 31: the models, grading, the search space, configs and apps depend on nothing above."""
    graph = import_graph(course_utils)  # imports inside functions included
    for module, forbidden in (("ml.", "campaign."), ("grading", "campaign.stopping"),
                              ("search_space", "ground_truth."), ("configs", "ml."),
                              ("apps", "campaign.")):
        for importer in (m for m in graph if m.startswith(module)):
            assert not [t for t in graph[importer] if t.startswith(forbidden)], (importer, forbidden)


def test_parts_are_parsed_only_by_the_builder(course_utils: Package) -> None:
    """Issue 31: each part's text is parsed once, in campaign.build (the CLI, the panel,
    sweeps and the engine all take the parts it built)."""
    offences = parts_parsed_outside_builder(course_utils)
    assert offences == [], "parts parsed outside the builder:\n" + "\n".join(offences)
    parses = part_parses(course_utils)
    assert BUILDER in parses  # the rule sees the builder's own calls
    assert [m for m in PARSED_ELSEWHERE if m not in parses] == []  # the list stays current


# --- each rule fails on a fake package with one offence -----------------------------------------


def test_finds_a_cycle_when_there_is_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


FAKE_INITS = {
    "__init__.py": "def lazy_exports(package, homes):\n    return None, None\n",
    "sub/__init__.py": (
        "from course_utils import lazy_exports\n"
        "__getattr__, __dir__ = lazy_exports(__name__, {'Thing': 'thing'})\n"
    ),
    "sub/thing.py": "class Thing:\n    pass\n\n\ndef _helper():\n    pass\n",
}

BAD_PACKAGES = {
    # cycle through `from <subpackage> import <module>` and a relative import
    "cycle": (cycles, {
        "top.py": "from course_utils.sub import other\n",
        "sub/other.py": "from ..top import x\n",
    }),
    # cycle that only shows once a lazy export is followed to its home module
    "cycle through lazy exports": (cycles, {
        "top.py": "from course_utils.sub import Thing\n",
        "sub/thing.py": "import course_utils.top\n\n\nclass Thing:\n    pass\n",
    }),
    "private name": (private_imports, {"top.py": "from course_utils.sub.thing import _helper\n"}),
    "private attribute": (private_imports, {
        "top.py": "from course_utils.sub import thing\n\nthing._helper()\n",
    }),
    "import inside a function": (undeferred_imports, {
        "top.py": "def f():\n    from course_utils.sub.thing import Thing\n    return Thing\n",
    }),
    "name through a subpackage __init__": (imports_through_init, {
        "top.py": "from course_utils.sub import Thing\n",
    }),
    # a part parsed in a second module beside the builder (an alias does not hide it), and a
    # registry asked directly
    "part parsed outside the builder": (parts_parsed_outside_builder, {
        "campaign/__init__.py": "",
        "campaign/build.py": ("from course_utils.campaign.stopping import parse_stop_rule\n\n\n"
                              "def build(p):\n    return parse_stop_rule(p.stop)\n"),
        "campaign/stopping.py": "def parse_stop_rule(text):\n    return text\n",
        "campaign/runner.py": ("from course_utils.campaign.stopping import parse_stop_rule as rule\n\n\n"
                               "def run(p):\n    return rule(p.stop)\n"),
    }),
    "registry asked outside the builder": (parts_parsed_outside_builder, {
        "widgets.py": ("from course_utils.ml.registry import MODEL_REGISTRY\n\n"
                       "least = MODEL_REGISTRY.make('knn').min_training\n"),
    }),
    # the ground floor reaching up to the campaign, even from inside a function
    "upward import": (lambda package: upward_imports(package, known={}), {
        "chemistry.py": ("def f():\n    # deferred: measured heavy import\n"
                         "    from course_utils.campaign.runner import run\n    return run\n"),
        "campaign/__init__.py": "",
        "campaign/runner.py": "def run():\n    pass\n",
    }),
}


def fake_package(tmp_path: Path, files: dict[str, str]) -> Package:
    root = tmp_path / PACKAGE
    for name, text in {**FAKE_INITS, **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return Package.read(root)


@pytest.mark.parametrize("case", sorted(BAD_PACKAGES))
def test_each_rule_fails_on_a_bad_package(tmp_path: Path, case: str) -> None:
    rule, files = BAD_PACKAGES[case]
    assert rule(fake_package(tmp_path, files)) != []


def test_a_clean_fake_package_passes(tmp_path: Path) -> None:
    package = fake_package(tmp_path, {
        "top.py": (
            "from course_utils.sub.thing import Thing\n"
            "from course_utils.sub import thing\n\n\n"
            "def f():\n    # deferred: measured heavy import\n"
            "    from course_utils.sub.thing import Thing as T\n    return T, Thing, thing\n"
        ),
    })
    for rule in (cycles, private_imports, undeferred_imports, imports_through_init,
                 lambda p: upward_imports(p, known={}), parts_parsed_outside_builder):
        assert rule(package) == [], rule


def test_an_annotation_only_import_is_not_a_cycle(tmp_path: Path) -> None:
    files = {
        "top.py": "from course_utils.sub.thing import Thing\n",
        "sub/thing.py": ("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                         "    from course_utils.top import x\n\n\nclass Thing:\n    pass\n"),
    }
    assert cycles(fake_package(tmp_path, files)) == []
    files["sub/thing.py"] = files["sub/thing.py"].replace("if TYPE_CHECKING:", "if True:")
    assert cycles(fake_package(tmp_path / "runs", files)) != []
