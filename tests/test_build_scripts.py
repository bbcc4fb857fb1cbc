"""The Go tool builds keep Go's own caches under the project's cache directory."""
import os
import re
import shutil
import subprocess

import pytest

from harness.support import REPO, missing

GO_BUILDS = ["build-collector", "build-compose"]


@pytest.mark.parametrize("script", GO_BUILDS)
def test_go_builds_source_the_shared_go_environment(script):
    text = (REPO / "scripts" / script).read_text()
    assert re.search(r"^\. .*lib/go-env\.sh", text, flags=re.M), f"scripts/{script} must source scripts/lib/go-env.sh"
    assert "GOFLAGS=" not in text and "GOMODCACHE" not in text  # one place decides


def test_go_environment_puts_every_go_cache_under_the_project_cache(tmp_path):
    go = shutil.which("go")
    if go is None:
        missing("go is not installed")
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GO", "SUBLARR_GO"))}
    env.update(SUBLARR_CACHE_DIR=str(cache), HOME=str(tmp_path / "home"))
    result = subprocess.run(["bash", "-c", ". scripts/lib/go-env.sh && go env GOPATH GOMODCACHE GOCACHE GOFLAGS"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    gopath, modcache, buildcache, goflags = result.stdout.splitlines()
    for path in (gopath, modcache, buildcache):
        assert path.startswith(str(cache) + "/"), path
    # A writable module cache, so that `rm -rf` of the cache directory works without root.
    assert "-modcacherw" in goflags.split()


def test_license_is_an_spdx_expression_so_setuptools_does_not_warn():
    """A ``license = {text = ...}`` table makes setuptools (>= 77) print a deprecation warning
    on every install (three times on a first `scripts/demo`)."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert isinstance(project["project"]["license"], str)
    assert re.fullmatch(r"[A-Za-z0-9.+-]+( (AND|OR|WITH) [A-Za-z0-9.+-]+)*", project["project"]["license"])
    requires = " ".join(project["build-system"]["requires"])
    assert re.search(r"setuptools>=(\d+)", requires) and int(re.search(r"setuptools>=(\d+)", requires)[1]) >= 77


@pytest.mark.parametrize("script", ["build-collector", "build-compose", "build-prometheus", "build-victoriametrics"])
def test_every_go_build_waits_for_a_running_one_and_then_reuses_its_binary(script):
    """Parallel test runs share the cache: a second build must take the lock, then look again."""
    text = (REPO / "scripts" / script).read_text()
    lock = re.search(r"^\s*flock 9$", text, flags=re.M)
    assert lock, f"scripts/{script} takes no lock before building"
    after = text[lock.end():].split("\n")
    look_again = r'\s*if (\[ -x "\$\w+" \]|built); then echo "\$\w+"; exit 0; fi'
    assert any(re.match(look_again, line) for line in after[:3]), (
        f"scripts/{script} does not look for the binary again once it holds the lock")
