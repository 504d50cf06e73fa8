"""Mutation check of the diagnosis: make one small bug at a time, run the fast tests, list the bugs nobody caught.

Each mutant is one edit to one file of analyzer/diagnosis or analyzer/catalogue
in a temporary copy of the tree:

    compare    a comparison operator flipped (< and <=, > and >=, == and !=, in and not in, is and is not)
    boolop     `and` and `or` swapped
    bool       True and False swapped
    not        a `not` dropped
    number     a numeric constant changed by +1 or -1
    verdict    a verdict/status word swapped for another of its enum (Verdict.RESET -> Verdict.REFUSED,
               or the same as a string literal, "reset" -> "refused")

and the chosen tests run against it. A mutant the tests pass is a *survivor*: a
bug in the diagnosis that no fast test notices. Some survivors are equivalent
(the edit changes nothing observable); the rest are missing tests.

Standard library only. The tree is copied from --src (default: the main
checkout, its HEAD commit by `git archive`) when the script starts, so later
edits there do not move under it.
Each mutant's test run is a fork of this process with the test tools already
imported (only the analyzer is imported afresh), which makes a run cost the
tests, not Python's start-up. Run it niced and capped; the machine is shared:

    nice python bench/mutate_diagnosis.py --max 300 --jobs 2 --out bench/mutation_diagnosis.md
"""

from __future__ import annotations

import argparse
import ast
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SRC = Path("/work/main") if Path("/work/main/analyzer").is_dir() else HERE.parent
TARGETS = ("analyzer/diagnosis", "analyzer/catalogue")
# Fast tests that exercise the diagnosis and catalogue (each file runs in a second or two once Python is up).
DEFAULT_TESTS = (
    "tests/test_diagnosis_answer.py",
    "tests/test_diagnosis_capture_styles.py",
    "tests/test_diagnosis_issuers.py",
    "tests/test_diagnosis_rules.py",
    "tests/test_catalogue_loader.py",
    "tests/test_catalogue_seed.py",
    "tests/test_matcher.py",
    "tests/test_dnsmap.py",
    "tests/test_compare.py",
    "tests/test_export.py",
    "tests/test_sample_truth.py",
)
# Imported once in the parent, so that each forked test run does not pay for them.
PRELOAD = ("pytest", "hypothesis", "jsonschema", "cryptography.x509", "dpkt", "rich.console", "numpy", "pandas")
COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", ".hypothesis", "notebooks", "build")

COMPARE_FLIP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
OP_TEXT = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
           ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}


@dataclass(frozen=True, slots=True)
class Mutant:
    path: str  # relative to the tree
    line: int
    kind: str
    what: str
    index: int  # the n-th mutation point of this kind and file, in walk order

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


# -- finding the mutation points -------------------------------------------------------------------------------

def enum_members(tree_root: Path) -> dict[str, list[list[tuple[str, str]]]]:
    """StrEnum classes of the target packages: class name -> its members' (name, value) lists."""
    out: dict[str, list[list[tuple[str, str]]]] = {}
    for rel in TARGETS:
        for path in sorted((tree_root / rel).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef) and any(getattr(b, "id", "") == "StrEnum" for b in node.bases):
                    members = [(t.id, stmt.value.value) for stmt in node.body if isinstance(stmt, ast.Assign)
                               for t in stmt.targets if isinstance(t, ast.Name)
                               and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)]
                    if len(members) > 1:
                        out.setdefault(node.name, []).append(members)
    return out


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes not to mutate: docstrings, annotations, decorators, f-string pieces, enum definitions, __all__."""
    skip: set[int] = set()

    def drop(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                drop(first)
        if isinstance(node, ast.ClassDef) and any(getattr(b, "id", "").endswith("Enum") for b in node.bases):
            drop(node)
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in node.decorator_list:  # @dataclass(frozen=True, slots=True): flips change no behaviour tested
                drop(d)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            drop(node.returns)
            for a in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]:
                drop(a.annotation)
        if isinstance(node, ast.AnnAssign):
            drop(node.annotation)
        if isinstance(node, ast.JoinedStr):
            drop(node)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            drop(node)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            drop(node)  # attribute docstrings
    return skip


def _other(members: list[tuple[str, str]], pos: int) -> int:
    return (pos + 1) % len(members)


def mutation_points(tree: ast.AST, enums: dict[str, list[list[tuple[str, str]]]]) -> Iterator[tuple[ast.AST, str, str]]:
    """(node, kind, description) for every mutation this module allows, in a fixed walk order."""
    skip = _skipped_nodes(tree)
    words = {v: members for lists in enums.values() for members in lists for _, v in members}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                flip = COMPARE_FLIP.get(type(op))
                if flip is not None:
                    yield node, "compare", f"{i}:{OP_TEXT[type(op)]} -> {OP_TEXT[flip]}"
        elif isinstance(node, ast.BoolOp):
            yield node, "boolop", "and -> or" if isinstance(node.op, ast.And) else "or -> and"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node, "not", "drop `not`"
        elif isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool):
                yield node, "bool", f"{v} -> {not v}"
            elif isinstance(v, (int, float)):
                yield node, "number", f"{v!r} -> {v + 1!r}"
                yield node, "number", f"{v!r} -> {v - 1!r}"
            elif isinstance(v, str) and v in words:
                members = words[v]
                pos = [m[1] for m in members].index(v)
                yield node, "verdict", f"{v!r} -> {members[_other(members, pos)][1]!r}"
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in enums:
            for members in enums[node.value.id]:
                names = [m[0] for m in members]
                if node.attr in names:
                    pos = names.index(node.attr)
                    yield node, "verdict", f"{node.value.id}.{node.attr} -> {node.value.id}.{names[_other(members, pos)]}"
                    break


def apply(node: ast.AST, kind: str, what: str, enums: dict[str, list[list[tuple[str, str]]]]) -> None:
    """Make the described edit on `node`, in place."""
    if kind == "compare":
        assert isinstance(node, ast.Compare)
        i = int(what.split(":", 1)[0])
        node.ops[i] = COMPARE_FLIP[type(node.ops[i])]()
    elif kind == "boolop":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif kind == "bool":
        assert isinstance(node, ast.Constant)
        node.value = not node.value
    elif kind == "number":
        assert isinstance(node, ast.Constant)
        node.value = ast.literal_eval(what.split(" -> ", 1)[1])
    elif kind == "verdict" and isinstance(node, ast.Constant):
        node.value = ast.literal_eval(what.split(" -> ", 1)[1])
    elif kind == "verdict" and isinstance(node, ast.Attribute):
        node.attr = what.split(" -> ", 1)[1].split(".", 1)[1]
    else:
        raise ValueError(kind)


class NotNode(ast.NodeTransformer):
    """Replaces one `not x` (by identity) with `x`."""

    def __init__(self, target: ast.AST) -> None:
        self.target = target

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        return node.operand if node is self.target else node


def mutated_source(source: str, mutant: Mutant, enums: dict[str, list[list[tuple[str, str]]]]) -> str:
    tree = ast.parse(source)
    points = [(n, k, w) for n, k, w in mutation_points(tree, enums) if k == mutant.kind]
    node, kind, what = points[mutant.index]
    assert (getattr(node, "lineno", 0), what) == (mutant.line, mutant.what), "the tree changed under us"
    if kind == "not":
        tree = NotNode(node).visit(tree)
    else:
        apply(node, kind, what, enums)
    return ast.unparse(ast.fix_missing_locations(tree))


def all_mutants(root: Path, enums: dict[str, list[list[tuple[str, str]]]]) -> list[Mutant]:
    out: list[Mutant] = []
    for rel in TARGETS:
        for path in sorted((root / rel).glob("*.py")):
            seen: Counter[str] = Counter()
            for node, kind, what in mutation_points(ast.parse(path.read_text()), enums):
                out.append(Mutant(str(path.relative_to(root)), getattr(node, "lineno", 0), kind, what, seen[kind]))
                seen[kind] += 1
    return out


# -- running the tests ---------------------------------------------------------------------------------------

def start_tests(copy: Path, tests: list[str], timeout: float, log: Path) -> int:
    """Fork a child that runs the tests in `copy`; return its pid."""
    pid = os.fork()
    if pid:
        return pid
    try:  # the child: never returns
        os.chdir(copy)
        sys.path.insert(0, str(copy))
        sys.dont_write_bytecode = True  # a mutated module must be compiled from its source, never a stale .pyc
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.alarm(max(1, int(timeout)))
        import pytest

        code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *tests])
        os._exit(int(code))
    except BaseException:  # noqa: BLE001 - whatever happens, the child must not run the parent's loop
        os._exit(99)


def wait_one() -> tuple[int, int]:
    """Wait for any running child: (pid, exit code); a child killed by a signal (timeout) gives 128+signal."""
    pid, status = os.wait()
    code = os.waitstatus_to_exitcode(status)
    return pid, (128 - code if code < 0 else code)


def run_baseline(copy: Path, tests: list[str], logdir: Path) -> float:
    started = time.monotonic()
    log = logdir / "baseline.log"
    pid = start_tests(copy, tests, 600, log)
    _, code = wait_one()
    if code != 0:
        sys.exit(f"the tests fail on the unmutated tree (exit {code}); see {log}:\n{log.read_text()[-3000:]}")
    return time.monotonic() - started


# -- the report ----------------------------------------------------------------------------------------------

def summary(results: list[tuple[Mutant, int, float]], total: int, tests: list[str], src: Path, commit: str,
            baseline: float, seconds: float, seed: int, selection: str = "") -> str:
    killed = [r for r in results if r[1] != 0]
    survived = [r[0] for r in results if r[1] == 0]
    timeouts = [r for r in results if r[1] == 128 + signal.SIGALRM]
    by_kind: Counter[str] = Counter(m.kind for m, _, _ in results)
    surv_kind: Counter[str] = Counter(m.kind for m in survived)
    by_file: Counter[str] = Counter(m.path for m, _, _ in results)
    surv_file: Counter[str] = Counter(m.path for m in survived)
    planned = f" (of {total} possible{selection})"
    lines = [
        "# Mutation check of the diagnosis and catalogue",
        "",
        f"`bench/mutate_diagnosis.py`, tree taken from `{src}` at `{commit}`.",
        f"{len(results)} mutants run{planned}, a random sample (seed {seed}); "
        f"{len(killed)} killed ({len(timeouts)} by timeout), **{len(survived)} survived**. "
        f"Baseline test run {baseline:.1f} s; whole check {seconds / 60:.1f} min.",
        "",
        "Tests run against each mutant (`-x`):",
        "",
        *[f"- `{t}`" for t in tests],
        "",
        "| kind | run | survived |",
        "|---|---:|---:|",
        *[f"| {k} | {n} | {surv_kind[k]} |" for k, n in sorted(by_kind.items())],
        "",
        "| file | run | survived |",
        "|---|---:|---:|",
        *[f"| `{f}` | {n} | {surv_file[f]} |" for f, n in sorted(by_file.items())],
        "",
        "## Survivors",
        "",
        "Each line: where the edit was made (line in the original file), and the edit. A survivor is a bug",
        "no fast test catches, unless the edit is equivalent (changes nothing observable).",
        "",
        *[f"- `{m.where}` {m.kind}: `{m.what}`" for m in sorted(survived, key=lambda m: (m.path, m.line, m.what))],
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC, help="tree to copy (default: %(default)s)")
    ap.add_argument("--rev", default="HEAD",
                    help="commit of --src to test (git archive): a checkout being edited or merged is not copied "
                         "as is; '' copies the working tree instead")
    ap.add_argument("--tests", nargs="*", help="test files, relative to the tree (default: the fast diagnosis tests)")
    ap.add_argument("--extra", nargs="*", type=Path, default=[],
                    help="test files to add to the copy (e.g. new tests not merged yet)")
    ap.add_argument("--max", type=int, default=200, help="run at most this many mutants, sampled (0: all)")
    ap.add_argument("--kinds", nargs="*", help="only these mutation kinds")
    ap.add_argument("--files", nargs="*", help="only files whose path contains one of these")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--jobs", type=int, default=1, help="test runs at once (one tree copy each)")
    ap.add_argument("--timeout", type=float, default=0, help="seconds per run (default: 3x the baseline + 10)")
    ap.add_argument("--budget", type=float, default=0, help="minutes: start no new mutant after this (0: no limit)")
    ap.add_argument("--out", type=Path, help="write the Markdown summary here")
    ap.add_argument("--list", action="store_true", help="list the mutants and stop")
    args = ap.parse_args(argv)

    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    assert "analyzer" not in sys.modules, "the analyzer must be imported afresh in each test run"

    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))  # so that the copies are removed
    work = Path(tempfile.mkdtemp(prefix="mutate-diagnosis-"))
    try:
        first = work / "tree0"
        commit = export_tree(args.src, args.rev, first)
        for extra in args.extra:
            shutil.copy2(extra, first / "tests" / extra.name)
        copies = [first]
        for j in range(1, max(1, args.jobs)):
            copies.append(work / f"tree{j}")
            shutil.copytree(first, copies[-1], symlinks=True)
        tests = [t for t in (args.tests or DEFAULT_TESTS) if (copies[0] / t).exists()]
        tests += [f"tests/{e.name}" for e in args.extra if f"tests/{e.name}" not in tests]
        enums = enum_members(copies[0])
        every = all_mutants(copies[0], enums)
        chosen = [m for m in every if (not args.kinds or m.kind in args.kinds)
                  and (not args.files or any(f in m.path for f in args.files))]
        chosen_all = list(chosen)
        random.Random(args.seed).shuffle(chosen)  # in random order: a --max or --budget cut stays a fair sample
        if args.max:
            chosen = chosen[:args.max]
        if args.list:
            for m in chosen:
                print(f"{m.where}\t{m.kind}\t{m.what}")
            print(f"{len(chosen)} of {len(every)} mutants", file=sys.stderr)
            return 0

        started = time.monotonic()
        baseline = run_baseline(copies[0], tests, work)
        timeout = args.timeout or baseline * 3 + 10
        print(f"baseline {baseline:.1f} s over {len(tests)} test files; {len(chosen)} of {len(every)} mutants; "
              f"timeout {timeout:.0f} s", file=sys.stderr)
        results: list[tuple[Mutant, int, float]] = []
        free = list(copies)
        running: dict[int, tuple[Mutant, Path, str, float]] = {}
        queue = list(chosen)
        while queue or running:
            if args.budget and time.monotonic() - started > args.budget * 60:
                queue.clear()  # out of time: finish the running ones and report what ran
            while queue and free:
                m = queue.pop(0)
                copy = free.pop()
                target = copy / m.path
                original = target.read_text()
                target.write_text(mutated_source(original, m, enums))
                pid = start_tests(copy, tests, timeout, work / f"{copy.name}.log")
                running[pid] = (m, copy, original, time.monotonic())
            if not running:
                break  # the budget ran out between two mutants: nothing left to wait for
            pid, code = wait_one()
            if pid not in running:
                continue
            m, copy, original, t0 = running.pop(pid)
            (copy / m.path).write_text(original)
            free.append(copy)
            results.append((m, code, time.monotonic() - t0))
            word = "SURVIVED" if code == 0 else "killed" if code != 128 + signal.SIGALRM else "timeout"
            print(f"[{len(results)}/{len(chosen)}] {word:8} {m.where} {m.kind}: {m.what}", file=sys.stderr, flush=True)
        selection = "".join([f"; files matching {' '.join(args.files)}" if args.files else "",
                             f"; kinds {' '.join(args.kinds)}" if args.kinds else ""])
        text = summary(results, len(chosen_all), tests, args.src, commit, baseline, time.monotonic() - started,
                       args.seed, selection)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
        print(text)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def export_tree(src: Path, rev: str, dest: Path) -> str:
    """Put `rev` of the git checkout `src` (or, with rev '', its working tree) in `dest`; return what was taken."""
    if not rev:
        shutil.copytree(src, dest, ignore=COPY_IGNORE, symlinks=True)
        return f"working tree at {_commit(src)}"
    sha = subprocess.run(["git", "-C", str(src), "rev-parse", "--short=12", rev], capture_output=True, text=True,
                         check=True).stdout.strip()
    archive = subprocess.run(["git", "-C", str(src), "archive", "--format=tar", sha], capture_output=True,
                             check=True).stdout
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return sha


def _commit(src: Path) -> str:
    head = src / ".git"
    try:
        if head.is_file():  # a worktree: "gitdir: ..."
            head = Path(head.read_text().split(":", 1)[1].strip())
        ref = (head / "HEAD").read_text().strip()
        if ref.startswith("ref: "):
            name = ref[5:]
            path = head / name
            if not path.exists():
                common = head / "commondir"
                base = (head / common.read_text().strip()).resolve() if common.exists() else head
                path = base / name
                if not path.exists():
                    packed = (base / "packed-refs").read_text().splitlines()
                    return next(line.split()[0] for line in packed if line.endswith(" " + name))[:12]
            return path.read_text().strip()[:12]
        return ref[:12]
    except (OSError, StopIteration, IndexError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
