"""The deployment files: Kubernetes manifests, docker compose, the CI recipe, the pre-commit hook.

No cluster and no Docker engine here, so each file is checked for what can be known offline:
- every Kubernetes manifest passes `kubernetes-validate --strict` (the oldest supported
  Kubernetes, 1.29 for native sidecars, and the newest the validator knows);
- the wiring that validation cannot see: replicas N agree with `--shard $(POD_INDEX)/N`, the
  runner's arguments parse with the real CLI for every ordinal, the runner reads below
  git-sync's link, ports / probes / volumes / users line up with the image's Dockerfile;
- the compose file against the compose-spec JSON Schema (`check-jsonschema`), and its
  essentials, the same way;
- the CI workflow's commands run against real status files, its shell loop against a stand-in
  `kubectl` that serves per-pod checkouts from temp directories;
- the pre-commit hook's entry passes the example bridges and rejects an invalid one.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.cli.exitcodes import EXIT_FAILED, EXIT_OK
from runner.cli.main import build_parser, main
from runner.loader.discovery import discover_bridge_files
from tests.project.test_container import dockerfile_stages, stage_env

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
COMPOSE = ROOT / "deploy" / "docker-compose.yaml"
WORKFLOW = ROOT / "docs" / "examples" / "bridges-ci.yaml"
CI_DOC = ROOT / "docs" / "ci.md"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
BRIDGES = ROOT / "bridges"
INVALID_BRIDGE = ROOT / "tests" / "fixtures" / "check" / "bridges" / "team-a"
VENV_BIN = Path(sys.executable).parent

POD_INDEX_LABEL = "metadata.labels['apps.kubernetes.io/pod-index']"
OLDEST_KUBERNETES = "1.29.0"  # native sidecar containers (initContainers[].restartPolicy)
RUNNER, GIT_SYNC = "bridge-runner", "git-sync"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc]


def _manifests() -> list[Path]:
    return sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


def _statefulset() -> dict[str, Any]:
    (found,) = [
        doc for path in _manifests() for doc in _documents(path) if doc["kind"] == "StatefulSet"
    ]
    return found


def _disruption_budget() -> dict[str, Any]:
    (found,) = [
        doc
        for path in _manifests()
        for doc in _documents(path)
        if doc["kind"] == "PodDisruptionBudget"
    ]
    return found


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    containers = pod.get("containers", []) + pod.get("initContainers", [])
    (found,) = [c for c in containers if c["name"] == name]
    return found


def _flag(args: list[str], name: str) -> str:
    """The value of `--name=value` or `--name value` in an argument list."""
    for i, arg in enumerate(args):
        if arg == name:
            return args[i + 1]
        if arg.startswith(f"{name}="):
            return arg.partition("=")[2]
    raise AssertionError(f"{name} not in {args}")


def _image_env() -> dict[str, str]:
    return stage_env(dockerfile_stages()[-1])


def _parse_cli(words: list[str]) -> Any:
    """Parse a command line with bridge-runner's real parser (argparse exits on an error)."""
    return build_parser(words).parse_args(words)


# --- Kubernetes --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, None], ids=["oldest", "newest"])
def test_every_manifest_passes_kubernetes_validate_strict(version: str | None) -> None:
    validate = shutil.which(
        "kubernetes-validate", path=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"
    )
    if validate is None:
        pytest.skip("kubernetes-validate not installed (in the dev extra)")
    versions = ["--kubernetes-version", version] if version else []  # None: the newest it knows
    manifests = _manifests()
    result = subprocess.run(
        [validate, "--strict", *versions, *map(str, manifests)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARN" not in output and "ERROR" not in output, output
    resources = sum(len(_documents(path)) for path in manifests)
    assert output.count(" passed for resource ") == resources, output


def test_kustomization_deploys_every_manifest_but_the_example_secret() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text("utf-8"))
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in _manifests()} - {"secret.example.yaml"}
    # Placeholder credentials must never be applied by `kubectl apply -k`.
    assert "secret.example.yaml" not in listed
    assert "replicas" not in kustomization  # replicas and --shard change together (see below)
    images = {image["name"] for image in kustomization["images"]}
    assert _container(_statefulset()["spec"]["template"]["spec"], RUNNER)["image"] in images


def test_every_replica_count_matches_the_shard_count() -> None:
    statefulset = _statefulset()
    replicas = statefulset["spec"]["replicas"]
    runner = _container(statefulset["spec"]["template"]["spec"], RUNNER)
    shard = _flag(runner["args"], "--shard")
    match = re.fullmatch(r"\$\((\w+)\)/(\d+)", shard)
    assert match, f"--shard {shard}: expected $(VAR)/N"
    variable, count = match[1], int(match[2])
    assert count == replicas
    (env,) = [e for e in runner["env"] if e["name"] == variable]
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == POD_INDEX_LABEL


def test_the_runner_arguments_parse_for_every_ordinal() -> None:
    statefulset = _statefulset()
    pod = statefulset["spec"]["template"]["spec"]
    runner, git_sync = _container(pod, RUNNER), _container(pod, GIT_SYNC)
    replicas = statefulset["spec"]["replicas"]
    link = Path(_flag(git_sync["args"], "--root")) / _flag(git_sync["args"], "--link")
    for ordinal in range(replicas):
        words = [arg.replace("$(POD_INDEX)", str(ordinal)) for arg in runner["args"]]
        args = _parse_cli(words)
        assert args.command == "run"
        assert (args.shard.index, args.shard.count) == (ordinal, replicas)
        # The runner reads through git-sync's link, which git-sync swaps at each commit.
        assert args.directory.is_relative_to(link)


def test_git_sync_is_a_native_sidecar_that_gates_the_runner() -> None:
    pod = _statefulset()["spec"]["template"]["spec"]
    git_sync = _container(pod, GIT_SYNC)
    assert git_sync in pod["initContainers"] and git_sync["restartPolicy"] == "Always"
    assert git_sync["image"].startswith("registry.k8s.io/git-sync/git-sync:v4.")
    link = f"{_flag(git_sync['args'], '--root')}/{_flag(git_sync['args'], '--link')}"
    assert git_sync["startupProbe"]["exec"]["command"][-1] == f"test -L {link}"
    assert "--group-write" in git_sync["args"]  # the runner writes status files into it
    # The runner belongs to git-sync's group through fsGroup, so it can write there.
    assert pod["securityContext"]["fsGroup"] == git_sync["securityContext"]["runAsGroup"]


# git-sync v4's deprecated flags (`git-sync --man`; v3-to-v4.md) and what replaces them.
GIT_SYNC_DEPRECATED = {
    "--ssh": "nothing: an ssh:// or git@ --repo URL uses SSH, with --ssh-key-file",
    "--password": "--password-file or $GITSYNC_PASSWORD",
    "--branch": "--ref",
    "--rev": "--ref",
    "--dest": "--link",
    "--wait": "--period",
    "--timeout": "--sync-timeout",
    "--max-sync-failures": "--max-failures",
    "--change-permissions": "--group-write",
    "--sync-hook-command": "--exechook-command",
    "--v": "-v / --verbose",
}
# Of those, the ones that no bridge-runner command has either: they must not appear anywhere
# in deploy/, comments included (bridge-runner has its own --wait and --timeout).
GIT_SYNC_ONLY_DEPRECATED = sorted(set(GIT_SYNC_DEPRECATED) - {"--wait", "--timeout", "--v"})


def _git_sync_args() -> dict[str, list[str]]:
    pod = _statefulset()["spec"]["template"]["spec"]
    compose = yaml.safe_load(COMPOSE.read_text("utf-8"))
    return {
        "statefulset.yaml": _container(pod, GIT_SYNC)["args"],
        "docker-compose.yaml": compose["services"][GIT_SYNC]["command"],
    }


def test_git_sync_runs_and_is_documented_with_v4_flags_only() -> None:
    for where, args in _git_sync_args().items():
        for arg in args:
            flag = arg.split("=", 1)[0]
            assert flag not in GIT_SYNC_DEPRECATED, (
                f"{where}: git-sync {flag} is deprecated in v4; use {GIT_SYNC_DEPRECATED[flag]}"
            )
    deprecated = re.compile(
        "|".join(rf"(?<![\w-]){re.escape(flag)}(?![\w-])" for flag in GIT_SYNC_ONLY_DEPRECATED)
    )
    deploy_files = [
        p
        for p in (ROOT / "deploy").rglob("*")
        if p.suffix in {".yaml", ".yml", ".md"} and p.is_file()
    ]
    assert COMPOSE in deploy_files and KUBERNETES / "statefulset.yaml" in deploy_files
    for path in deploy_files:
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            found = deprecated.search(line)
            assert found is None, (
                f"{path.relative_to(ROOT)}:{number}: git-sync {found[0]} is deprecated in v4; "
                f"use {GIT_SYNC_DEPRECATED[found[0]]}"
            )
    # How to reach a private repository is still said, with the flags v4 has.
    statefulset = (KUBERNETES / "statefulset.yaml").read_text("utf-8")
    assert "--ssh-key-file" in statefulset and "--password-file" in statefulset


def test_volumes_ports_and_probes_line_up() -> None:
    statefulset = _statefulset()
    template = statefulset["spec"]["template"]
    pod = template["spec"]
    runner, git_sync = _container(pod, RUNNER), _container(pod, GIT_SYNC)
    declared = {v["name"] for v in pod["volumes"]} | {
        claim["metadata"]["name"] for claim in statefulset["spec"]["volumeClaimTemplates"]
    }
    for container in (runner, git_sync):
        assert {m["name"] for m in container["volumeMounts"]} <= declared
    git_root = _flag(git_sync["args"], "--root")
    for container in (runner, git_sync):
        assert {"name": "git", "mountPath": git_root} in container["volumeMounts"]

    env = {e["name"]: e.get("value") for e in runner["env"]}
    image_env = _image_env()
    for name in (
        "BRIDGE_RUNNER_STATE_DIR",
        "BRIDGE_RUNNER_SECRETS_DIR",
        "BRIDGE_RUNNER_METRICS_ADDR",
    ):
        assert env[name] == image_env[name]
    mounts = {m["mountPath"]: m["name"] for m in runner["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]}
    assert mounts[env["BRIDGE_RUNNER_STATE_DIR"]] in claims  # state survives a restart
    assert "/tmp" in mounts  # the root filesystem is read-only

    port = int(env["BRIDGE_RUNNER_METRICS_ADDR"].rpartition(":")[2])
    (container_port,) = runner["ports"]
    assert container_port["containerPort"] == port
    assert runner["livenessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": container_port["name"],
    }
    assert runner["readinessProbe"]["httpGet"] == {
        "path": "/readyz",
        "port": container_port["name"],
    }
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"

    (service,) = [d for d in _documents(KUBERNETES / "service.yaml")]
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["selector"] == statefulset["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == container_port["name"]


def test_a_disruption_budget_keeps_shards_up_without_blocking_a_drain() -> None:
    budget, statefulset = _disruption_budget(), _statefulset()
    assert budget["apiVersion"] == "policy/v1"
    assert budget["metadata"]["namespace"] == statefulset["metadata"]["namespace"]
    spec = budget["spec"]
    # It covers exactly the runner's pods: the StatefulSet's own selector.
    assert spec["selector"] == statefulset["spec"]["selector"]
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    # A pod whose /readyz answers 503 (a bridge not Ready) is not "healthy" to the eviction
    # API; with the default policy (IfHealthyBudget) it could then never be evicted, and a
    # node drain would wait forever. AlwaysAllow lets unhealthy pods go.
    assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    # One shard at a time may be evicted, whatever the replica count: never all of them at
    # once, and never a budget that forbids every eviction (minAvailable == replicas).
    assert spec["maxUnavailable"] == 1
    assert "minAvailable" not in spec


def test_every_container_runs_unprivileged_on_a_read_only_root() -> None:
    pod = _statefulset()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    image_user = next(i.arguments for i in dockerfile_stages()[-1] if i.keyword == "USER")
    for container in pod["containers"] + pod["initContainers"]:
        context = container["securityContext"]
        assert context["runAsUser"] != 0
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "memory" in container["resources"]["limits"]
    runner = _container(pod, RUNNER)["securityContext"]
    assert f"{runner['runAsUser']}:{runner['runAsGroup']}" == image_user


def test_credentials_come_from_optional_secrets_or_irsa() -> None:
    pod = _statefulset()["spec"]["template"]["spec"]
    runner = _container(pod, RUNNER)
    (env_from,) = runner["envFrom"]
    secrets = {d["metadata"]["name"]: d for d in _documents(KUBERNETES / "secret.example.yaml")}
    assert env_from["secretRef"]["name"] in secrets
    assert env_from["secretRef"]["optional"] is True  # absent with IRSA
    assert set(secrets[env_from["secretRef"]["name"]]["stringData"]) == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }
    # Secrets mounted for valueFromSecret: {name: N, key: K} -> <secrets dir>/N/K.
    secrets_dir = _image_env()["BRIDGE_RUNNER_SECRETS_DIR"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in runner["volumeMounts"]:
        secret = volumes.get(mount["name"], {}).get("secret")  # claims are not volumes
        if secret:
            assert mount["mountPath"] == f"{secrets_dir}/{secret['secretName']}"
            assert mount["readOnly"] is True and secret["optional"] is True
            assert secret["secretName"] in secrets
    serviceaccount = (KUBERNETES / "serviceaccount.yaml").read_text("utf-8")
    assert "eks.amazonaws.com/role-arn" in serviceaccount


# --- docker compose ----------------------------------------------------------------------------


def test_compose_runs_the_runner_on_git_syncs_checkout() -> None:
    compose = yaml.safe_load(COMPOSE.read_text("utf-8"))
    services = compose["services"]
    assert set(services) == {GIT_SYNC, RUNNER}
    git_sync, runner = services[GIT_SYNC], services[RUNNER]
    statefulset_pod = _statefulset()["spec"]["template"]["spec"]
    assert git_sync["image"] == _container(statefulset_pod, GIT_SYNC)["image"]

    git_root = _flag(git_sync["command"], "--root")
    link = Path(git_root) / _flag(git_sync["command"], "--link")
    args = _parse_cli(runner["command"])
    assert args.command == "run"
    assert args.directory.is_relative_to(link)
    assert "--group-write" in git_sync["command"]
    assert runner["depends_on"][GIT_SYNC]["condition"] == "service_healthy"
    assert git_sync["healthcheck"]["test"][-1] == f"test -L {link}"

    named = set(compose["volumes"])
    git_volume = f"git:{git_root}"
    assert git_volume in git_sync["volumes"] and git_volume in runner["volumes"]
    state_dir = _image_env()["BRIDGE_RUNNER_STATE_DIR"]
    assert f"state:{state_dir}" in runner["volumes"]
    assert {v.split(":")[0] for v in git_sync["volumes"] + runner["volumes"]} - {
        "./secrets"
    } <= named
    # git-sync's group (fsGroup in Kubernetes): the runner writes status files into the checkout.
    assert runner["group_add"] == [str(statefulset_pod["securityContext"]["fsGroup"])]
    assert (COMPOSE.parent / runner["build"]["context"] / runner["build"]["dockerfile"]).is_file()
    port = _image_env()["BRIDGE_RUNNER_METRICS_ADDR"].rpartition(":")[2]
    assert runner["ports"] == [f"127.0.0.1:{port}:{port}"]


def _venv_tool(name: str) -> str | None:
    return shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")


def _check_compose_spec(path: Path) -> subprocess.CompletedProcess[str]:
    validate = _venv_tool("check-jsonschema")
    if validate is None:
        pytest.skip("check-jsonschema not installed (in the dev extra)")
    # The compose-spec JSON Schema that Compose v2 (compose-go) validates files against,
    # vendored by check-jsonschema: no network needed.
    return subprocess.run(
        [validate, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_compose_file_is_valid_compose_spec(tmp_path: Path) -> None:
    result = _check_compose_spec(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout
    # The validator does check: a misspelt key in a copy of the file is rejected.
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text(
        COMPOSE.read_text("utf-8").replace("    read_only: true\n", "    readonly: true\n", 1),
        "utf-8",
    )
    rejected = _check_compose_spec(broken)
    assert rejected.returncode == 1, rejected.stdout + rejected.stderr
    assert "'readonly' was unexpected" in rejected.stdout


def test_the_compose_file_is_written_for_compose_v2_and_says_so() -> None:
    text = COMPOSE.read_text("utf-8")
    # Compose v2 ignores a top-level `version:` and warns that it is obsolete.
    assert "version" not in yaml.safe_load(text)
    header = text.split("\n\n", 1)[0]
    assert "Compose v2" in header and "docker compose " in header
    # No `docker-compose` (v1, end of life) command anywhere in the file or the README.
    v1_command = re.compile(r"\bdocker-compose\s+(-f|up|down|exec|run|build|config)\b")
    assert not v1_command.search(text)
    assert not v1_command.search((ROOT / "README.md").read_text("utf-8"))


# --- the CI recipe -------------------------------------------------------------------------------


def _workflow() -> dict[Any, Any]:
    return yaml.safe_load(WORKFLOW.read_text("utf-8"))


def test_the_ci_doc_shows_the_workflow_file_verbatim() -> None:
    assert f"```yaml\n{WORKFLOW.read_text('utf-8')}```" in CI_DOC.read_text("utf-8")


def test_the_workflow_checks_pull_requests_and_waits_after_a_push() -> None:
    workflow = _workflow()
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as a boolean; GitHub does not
    assert {"pull_request", "push"} <= set(triggers)
    commands = [
        line.strip()
        for job in workflow["jobs"].values()
        for step in job["steps"]
        for line in str(step.get("run", "")).splitlines()
    ]
    assert "bridge-runner check --format github bridges/" in commands
    assert any("bridge-runner status bridges/ --wait --for-revision" in c for c in commands)


def test_the_documented_commands_parse_with_the_real_cli() -> None:
    texts = CI_DOC.read_text("utf-8") + WORKFLOW.read_text("utf-8")
    commands = re.findall(r"bridge-runner ((?:check|status|run) [^;`\n]*?)(?:;|`|\n|$)", texts)
    assert len(commands) >= 3
    for command in commands:
        words = shlex.split(command.replace("\\", ""))
        words = [w.replace("$GITHUB_SHA", "0" * 40) for w in words if w != "..."]
        assert _parse_cli(words).command in {"check", "status", "run"}


def test_the_pull_request_check_passes_on_the_example_bridges(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["check", "--format", "github", "bridges/"]) == EXIT_OK
    assert "::error" not in capsys.readouterr().out


# The wait step itself (copying every shard's statuses and the runner record, fetching main,
# `status --wait`) runs against real git repositories in tests/project/test_ci_rollout_step.py.


# --- the pre-commit hook -----------------------------------------------------------------------


def _hook() -> dict[str, Any]:
    (hook,) = yaml.safe_load(HOOKS.read_text("utf-8"))
    assert hook["id"] == "bridge-runner-check"
    return dict(hook)


def test_the_hook_selects_bridge_files_only() -> None:
    hook = _hook()
    assert hook["language"] == "python"  # pre-commit pip-installs this repository
    files = re.compile(hook["files"])
    for path in discover_bridge_files(BRIDGES):
        assert files.search(path.relative_to(ROOT).as_posix())
    assert files.search("bridges/team/signups.yml")
    assert not files.search("bridges/minimal.status.json")
    assert not files.search("README.md")


def test_the_hook_entry_passes_valid_bridges_and_rejects_an_invalid_one() -> None:
    hook = _hook()
    entry = shlex.split(hook["entry"])
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    files = re.compile(hook["files"])
    examples = [
        p.relative_to(ROOT).as_posix()
        for p in discover_bridge_files(BRIDGES)
        if files.search(p.name)
    ]
    # pre-commit runs the entry with the matching staged files as arguments.
    valid = subprocess.run(
        [*entry, *examples], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert valid.returncode == EXIT_OK, valid.stdout + valid.stderr
    invalid_files = [str(p) for p in discover_bridge_files(INVALID_BRIDGE)]
    assert invalid_files
    invalid = subprocess.run(
        [*entry, *examples, *invalid_files],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert invalid.returncode == EXIT_FAILED
    assert "error" in invalid.stdout
