# Source this file (do not execute it):   source activate_env.sh
#
# On Polaris it loads the conda module and activates the course's conda environment, creating it
# from environment.yml the first time and updating it when the dependency list changed.
# Elsewhere it creates (once) and activates a virtual environment in .venv with pip (with
# MPICH's mpiexec and mpi4py, from PyPI wheels), reinstalling when the list changed. Either way
# it registers the Jupyter kernel "ml-in-the-loop" and keeps xTB single-threaded per simulation.
# Safe to source again: finished steps are skipped.
#
# Settings (all optional): COURSE_ENV_MODE=conda|venv, COURSE_PYTHON (venv interpreter),
# COURSE_VENV (venv path), COURSE_CONDA_ENV (conda env prefix), COURSE_KERNEL_NAME.

_course_fail() { echo "activate_env.sh: $*" >&2; return 1; }

if [ -n "${BASH_VERSION:-}" ] && [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "activate_env.sh must be sourced: run 'source activate_env.sh'" >&2
    exit 1
fi

COURSE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
export COURSE_ROOT
COURSE_KERNEL_NAME="${COURSE_KERNEL_NAME:-ml-in-the-loop}"

_course_on_polaris() {
    case "${COURSE_ENV_MODE:-}" in conda) return 0 ;; venv) return 1 ;; esac
    case "$(hostname -f 2>/dev/null):${PBS_O_HOST:-}" in *polaris*) return 0 ;; esac
    return 1
}

_course_install_stamp() {
    # The environment is rebuilt only when the project's dependency list changes.
    cat "$COURSE_ROOT/pyproject.toml" "$COURSE_ROOT/environment.yml" 2>/dev/null | cksum | cut -d' ' -f1
}

# An environment's stamp file says which dependency list it was last installed from.
_course_stamp_current() { [ -f "$1" ] && [ "$(cat "$1")" = "$(_course_install_stamp)" ]; }
_course_write_stamp() { _course_install_stamp >"$1"; }

_course_activate_conda() {
    if ! command -v conda >/dev/null 2>&1; then
        module use /soft/modulefiles 2>/dev/null
        module load conda 2>/dev/null || _course_fail "could not 'module load conda'" || return 1
    fi
    local prefix="${COURSE_CONDA_ENV:-$COURSE_ROOT/.conda-env}"
    local stamp="$prefix/.course_install_stamp"
    if [ ! -d "$prefix/conda-meta" ]; then
        echo "Creating the course conda environment in $prefix (once, takes a few minutes)..."
        (cd "$COURSE_ROOT" && conda env create --prefix "$prefix" --file environment.yml) ||
            _course_fail "conda env create failed; see the messages above" || return 1
        _course_write_stamp "$stamp"
    elif ! _course_stamp_current "$stamp"; then
        # The dependency list changed since the environment was made: bring it up to date.
        echo "Updating the course conda environment in $prefix (the dependencies changed) ..."
        (cd "$COURSE_ROOT" && conda env update --prefix "$prefix" --file environment.yml) ||
            _course_fail "conda env update failed; see the messages above" || return 1
        _course_write_stamp "$stamp"
    fi
    conda activate "$prefix" || _course_fail "conda activate $prefix failed" || return 1
    KERNEL_SCOPE="--user"
}

_course_activate_venv() {
    local venv="${COURSE_VENV:-$COURSE_ROOT/.venv}" python="${COURSE_PYTHON:-}"
    if [ ! -x "$venv/bin/python" ]; then
        if [ -z "$python" ]; then
            python="$(command -v python3.11 || command -v python3)" ||
                _course_fail "no python3 found; install Python 3.11" || return 1
        fi
        "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
            _course_fail "$python is older than Python 3.11; set COURSE_PYTHON" || return 1
        echo "Creating the course virtual environment in $venv ..."
        "$python" -m venv "$venv" || _course_fail "python -m venv failed" || return 1
    fi
    # shellcheck disable=SC1091
    . "$venv/bin/activate" || return 1
    local stamp="$venv/.course_install_stamp"
    if ! _course_stamp_current "$stamp"; then
        echo "Installing the course packages into $venv (once; pip output in $venv/pip.log) ..."
        {
            python -m pip install --upgrade pip &&
            python -m pip install -e "$COURSE_ROOT[dev,engines,mpi]"
        } >"$venv/pip.log" 2>&1 || {
            tail -n 20 "$venv/pip.log" >&2
            _course_fail "pip install failed (full log: $venv/pip.log)"
            return 1
        }
        _course_write_stamp "$stamp"
    fi
    KERNEL_SCOPE="--sys-prefix"
}

if _course_on_polaris; then
    _course_activate_conda || return 1
else
    _course_activate_venv || return 1
fi

# A named kernel lets JupyterLab and papermill (-k ml-in-the-loop) use exactly this environment.
# Its spec carries PATH and the thread limits, so it also works when a Jupyter server outside
# this environment (a JupyterHub) starts it. Re-registered only when it is missing or stale.
python -m course_utils.polaris.jupyter_kernel --if-needed --name "$COURSE_KERNEL_NAME" "$KERNEL_SCOPE" ||
    _course_fail "could not register the Jupyter kernel" || return 1
unset KERNEL_SCOPE

# One OpenMP thread per xTB simulation: workers run side by side, one per core.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export COURSE_UTILS_XTB_THREADS="${COURSE_UTILS_XTB_THREADS:-$OMP_NUM_THREADS}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
export MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
export COURSE_KERNEL_NAME
