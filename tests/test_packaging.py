"""The package: pyproject's dependency ranges hold requirements.txt's pins, the wheel carries every module
and every file the code reads at run time, and an installed wheel works from a fresh virtual environment.

The fresh environment gets the wheel with `--no-deps` and sees this environment's site-packages through
a .pth file (nothing is downloaded, no CUDA torch); `pip check` then holds the wheel's declared
requirements against those installed versions. Nothing from the checkout is importable there: commands
run with `python -P` (no current directory on sys.path) and check where `reranker` came from.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.request
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from reranker.cli import main
from reranker.distribution import BUNDLED, CHECKOUT, bundled, version
from tests.support import free_port

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
SOURCE_PARTS = ("pyproject.toml", "README.md", "reranker", "assets", "corpora", "models")
API_SECTION = re.compile(r"<!-- section:api -->(.*?)<!-- /section:api -->", re.S)
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _pins(*files: str) -> dict[str, str]:
    pins = {}
    for name in files:
        for line in (REPO / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                requirement = Requirement(line)
                (spec,) = requirement.specifier
                assert spec.operator == "==", f"{name}: {line} is not a pin"
                pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def _declared() -> list[Requirement]:
    project = PYPROJECT["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in [*project["dependencies"], *extras] if not r.startswith(project["name"])]


def test_pyproject_ranges_hold_the_pinned_requirements_and_this_environment():
    pins = _pins("requirements.txt", "requirements-dev.txt")
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        if name in pins:
            assert requirement.specifier.contains(pins[name]), f"{requirement} excludes the pinned {name}=={pins[name]}"
        installed = metadata.version(requirement.name)
        assert requirement.specifier.contains(installed, prereleases=True), f"{requirement} excludes installed {installed}"
    torch = next(r for r in _declared() if r.name == "torch")
    assert str(torch.specifier) == "==2.13.0" == f"=={pins['torch']}"  # an unpinned torch pulls a CUDA build
    assert set(PYPROJECT["project"]["optional-dependencies"]) == {"app", "llama-index", "langchain", "ray", "dev"}


def test_every_subpackage_is_listed_for_the_wheel():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "reranker").rglob("__init__.py")}
    assert found - listed == set(), "subpackages missing from [tool.setuptools] packages"


def test_version_and_bundled_folders_in_a_checkout(tmp_path, monkeypatch, capsys):
    import reranker

    assert reranker.__version__ == version() == PYPROJECT["project"]["version"]
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == f"python -m reranker {version()}\n"
    assert CHECKOUT == REPO and all(bundled(name) == REPO / name for name in BUNDLED)
    with pytest.raises(ValueError, match="unknown bundled folder"):
        bundled("tests")
    installed = tmp_path / "_bundled"
    (installed / "corpora").mkdir(parents=True)
    monkeypatch.setattr("reranker.distribution.INSTALLED_DATA", installed)
    assert bundled("corpora") == installed / "corpora" and bundled("models") == REPO / "models"


def test_dataset_names_a_bundled_corpus_unless_a_path_of_that_name_exists(tmp_path, monkeypatch, capsys):
    from reranker.commands.common import load_cli_dataset
    from tests.support import write_topics

    monkeypatch.chdir(tmp_path)
    assert len(load_cli_dataset("knowledge").corpus) == 331
    write_topics(tmp_path / "knowledge")
    assert len(load_cli_dataset("knowledge").corpus) == 8
    assert main(["rerank-run", "--dataset", "nowhere", "--run", "x", "--out", "y"]) == 2
    assert "nowhere: no such file or folder" in capsys.readouterr().err


def test_the_app_command_names_the_extra_when_gradio_is_missing(monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "reranker.ui" or m.startswith("reranker.ui.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` raises ImportError
    assert main(["app", "--port", "1"]) == 2
    assert "pip install 'rerank-lens[app]'" in capsys.readouterr().err


# ---------------------------------------------------------------- the wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built offline with this environment's setuptools from a copy of the source tree
    (an in-tree build would leave build/ and *.egg-info in the checkout)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    for part in SOURCE_PARTS:
        origin = REPO / part
        if origin.is_dir():
            shutil.copytree(origin, source / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(origin, source / part)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    built = subprocess.run([*command, "-w", str(root / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (path,) = (root / "dist").glob("rerank_lens-*.whl")
    return path


def test_the_wheel_carries_every_module_and_every_runtime_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "reranker").rglob("*.py")}
    assert modules - names == set(), "modules missing from the wheel"
    expected = {"reranker/_bundled/assets/app.css"}
    for corpus in (REPO / "corpora").iterdir():
        if not (corpus / "corpus.jsonl").is_file():
            continue  # a dev set built from ../shared (corpora/longqueries): not shipped
        files = [corpus / "corpus.jsonl", corpus / "queries.jsonl", *sorted((corpus / "qrels").glob("*.tsv"))]
        expected |= {f"reranker/_bundled/{f.relative_to(REPO).as_posix()}" for f in files}
    for model in (REPO / "models").iterdir():
        expected |= {f"reranker/_bundled/{f.relative_to(REPO).as_posix()}" for f in model.iterdir() if f.is_file()}
    assert expected - names == set(), "runtime files missing from the wheel"
    assert not any(n.startswith(("tests/", "benchmarks/")) or "/tools/" in n for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "rerank-lens = reranker.cli:console" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh venv (no pip, no system site-packages) with the wheel installed and this environment's
    packages visible through a .pth file; returns (bin folder, environment for its commands)."""
    root = tmp_path_factory.mktemp("venv")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # Only after installing: pip must not see (and try to replace) anything of this environment.
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    shared = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "_rerank_lens_test_deps.pth").write_text("".join(f"{p}\n" for p in shared))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RERANK_LENS_ALLOW_UNTRAINED_HEAD")}
    env.update(HF_HUB_OFFLINE="1", RERANK_LENS_CACHE=str(root / "cache"), GRADIO_ANALYTICS_ENABLED="False")
    return venv / "bin", env, Path(site)


def _run(command, env, cwd, timeout=300):
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


@pytest.mark.slow
def test_the_installed_wheel_runs_its_command_and_the_readme_api_example(installed, tmp_path):
    bin_dir, env, site = installed
    done = _run([bin_dir / "rerank-lens", "--version"], env, tmp_path)
    assert done.returncode == 0 and done.stdout == f"rerank-lens {version()}\n", done.stderr
    done = _run([bin_dir / "rerank-lens", "--help"], env, tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("usage: rerank-lens"), done.stderr
    for command in ("search", "eval", "rerank-run", "finetune", "app"):
        assert command in done.stdout
    check = _run([sys.executable, "-m", "pip", "--python", bin_dir / "python", "check"], env, tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr  # the declared requirements hold

    # docs/api.md's core API blocks (no extras installed, so not the LlamaIndex and LangChain ones), run from
    # the repository root as the page says, importing the installed package and its shipped offline model.
    section = API_SECTION.search((REPO / "docs" / "api.md").read_text(encoding="utf-8")).group(1)
    blocks = [b for b in PYTHON_BLOCK.findall(section) if "reranker.integrations" not in b]
    assert len(blocks) >= 3 and "Reranker(model=\"auto\"" in blocks[0]
    script = tmp_path / "readme_api.py"
    script.write_text(
        "import json, sys\n"
        "import reranker\n"
        "from reranker import project_models\n"
        "from reranker.pipeline import resolve_cross_encoder_spec\n"
        f"blocks = json.loads({json.dumps(json.dumps(blocks))})\n"
        "namespace = {'__name__': 'readme'}\n"
        "for number, code in enumerate(blocks, start=1):\n"
        "    exec(compile(code, f'docs/api.md block {number}', 'exec'), namespace)\n"
        "print('REPORT', json.dumps({'package': reranker.__file__, 'models': str(project_models.MODELS_ROOT),\n"
        "      'auto': resolve_cross_encoder_spec('auto'), 'reranked': namespace['result'].reranked}))\n"
    )
    done = _run([bin_dir / "python", "-P", str(script)], env, REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.rsplit("REPORT ", 1)[1])
    assert report["package"].startswith(str(site)) and report["models"].startswith(str(site))
    assert report["reranked"] and report["auto"]
    assert "window" in done.stdout and "fused" in done.stdout  # the long-document and pipeline blocks printed


@pytest.mark.slow
def test_the_installed_app_command_serves_the_page_from_the_wheels_files(installed, tmp_path):
    bin_dir, env, _ = installed
    port = free_port()
    log_path = tmp_path / "app.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [bin_dir / "rerank-lens", "app", "--port", str(port)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.time() + 240
            page = ""
            while time.time() < deadline and process.poll() is None and not page:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                        page = response.read().decode()
                except OSError:
                    time.sleep(0.5)
            assert process.poll() is None and page, log_path.read_text()[-3000:]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=10) as response:
                config = response.read().decode()
            assert "knowledge (bundled)" in config  # the corpora inside the wheel
            assert ".rl-header" in config  # assets/app.css, inside the wheel
        finally:
            process.terminate()
            process.wait(timeout=30)
