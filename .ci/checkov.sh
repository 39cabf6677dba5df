#!/usr/bin/env bash
## Static security scan of the Terraform in infra/ with checkov, fully offline.
## checkov runs from its own venv (.ci/.venv-checkov) because its dependencies clash with
## python-hcl2 (both ship an `hcl2` module). The venv is created once and reused; it is
## rebuilt when .ci/requirements-checkov.txt changes.
## Exit status: non-zero when checkov reports any failed check. Every finding must be fixed
## or skipped inline in the .tf with `#checkov:skip=CKV_...:reason`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROOT}/.ci/.venv-checkov"
REQS="${ROOT}/.ci/requirements-checkov.txt"
STAMP="${VENV}/.requirements.sha256"
PYTHON="${PYTHON:-python3}"

want="$(sha256sum "${REQS}" | cut -d' ' -f1)"
if [[ ! -x "${VENV}/bin/checkov" || ! -f "${STAMP}" || "$(cat "${STAMP}")" != "${want}" ]]; then
  echo "checkov.sh: installing checkov into ${VENV}" >&2
  rm -rf "${VENV}"
  "${PYTHON}" -m venv "${VENV}"
  log="$(mktemp)"
  if ! "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check -r "${REQS}" >"${log}" 2>&1; then
    cat "${log}" >&2
    rm -f "${log}"
    exit 1
  fi
  rm -f "${log}"
  echo "${want}" >"${STAMP}"
fi

cd "${ROOT}"
## --skip-download: no Bridgecrew platform calls, no policy downloads (no network here).
## BC_SKIP_MAPPING / CHECKOV_RUN_SCA_PACKAGE_SCAN keep it from reaching out for metadata.
export BC_SKIP_MAPPING=TRUE
export CHECKOV_RUN_SCA_PACKAGE_SCAN=false
exec "${VENV}/bin/checkov" -d infra --framework terraform --skip-download --quiet --compact "$@"
