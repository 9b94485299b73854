# shellcheck shell=bash
# The Python tools the suite's own scripts run (sourced by test.sh and run.sh):
# aiosmtpd for the local SMTP server (scripts/smtp_sink.py) and dkimpy to
# check the DKIM signatures it receives (scripts/dkim_verify.py), in a venv under
# ~/.cache/crm-tools shared with the API and Kubernetes checks' tools.

CRM_TOOLS_DIR="${CRM_TOOLS_DIR:-$HOME/.cache/crm-tools}"
CRM_PY_PINS="aiosmtpd==1.4.6 dkimpy==1.1.8 dnspython==2.7.0"

# Installs the pins into the venv once (again when they change) and prints its python.
crm_tools_python() {
    local venv="$CRM_TOOLS_DIR/venv"
    if [[ ! -x $venv/bin/python || $(cat "$venv/.crm-test-pins" 2>/dev/null) != "$CRM_PY_PINS" ]]; then
        echo "installing $CRM_PY_PINS into $venv (once)" >&2
        mkdir -p "$CRM_TOOLS_DIR"
        [[ -x $venv/bin/python ]] || python3 -m venv "$venv" >&2
        # shellcheck disable=SC2086 # one pin per word
        "$venv/bin/pip" install --quiet --disable-pip-version-check $CRM_PY_PINS >&2
        printf '%s' "$CRM_PY_PINS" >"$venv/.crm-test-pins"
    fi
    printf '%s\n' "$venv/bin/python"
}
