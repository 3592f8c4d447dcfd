"""The README's two set-up commands are exactly what .ci/run executes."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text().split("```sh\n", 1)[1].split("```", 1)[0].strip().splitlines()
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line and not line.startswith(("#", "set ", "cd "))]
    assert len(readme) == 2
    assert ci == readme


def test_every_python_package_dir_is_installed():
    """pyproject lists packages explicitly (package-dir mapping): none may be forgotten."""
    text = (ROOT / "pyproject.toml").read_text()
    roots = {"pyflame_rt": "pyflame_rt", "dialects": "pyflame_rt.dialects",
             "transforms": "pyflame_rt.transforms", "targets": "pyflame_rt.targets",
             "runtime": "pyflame_rt.runtime"}
    for folder, pkg in roots.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            name = ".".join((pkg, *rel))
            assert f'"{name}"' in text, f"{name} missing from [tool.setuptools] packages"
