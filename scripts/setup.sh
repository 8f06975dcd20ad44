# Create .venv and install corequeue with its development extras. Sourced by the scripts.
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    printf '\033[1m==> creating .venv\033[0m\n'
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c 'import corequeue, pytest, mypy, redis, psycopg' >/dev/null 2>&1 \
    || [ pyproject.toml -nt .venv/.installed ]; then
    printf '\033[1m==> installing corequeue and its dev dependencies\033[0m\n'
    .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING' || true
    .venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v '^WARNING' || true
    .venv/bin/python -c 'import corequeue, pytest, mypy, redis, psycopg'
    touch .venv/.installed
fi
