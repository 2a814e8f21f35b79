# Sourced by the submit helpers: make `python -m course_utils` work on a login node, activating
# the course environment (activate_env.sh) only when it is not active already.
_submit_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! python -c 'import course_utils' >/dev/null 2>&1; then
    set +u
    # shellcheck disable=SC1091
    source "$_submit_root/activate_env.sh" >/dev/null
    set -u
fi
