# The two commands of the README (`make test`, `make demo`); each sets up ./.venv first
# (idempotent). `make lint` runs the linters CI runs (settings in setup.cfg, line length 100).
PY := .venv/bin/python
CHECKPOINT ?=
DEMO_ARGS ?=
LINT_PATHS := mmuol tools demo tests configs setup.py
YAML_FILES := $(wildcard *.yml .*.yaml configs/*/*.yml)

.PHONY: setup test demo lint

setup:
	@bash tools/setup_env.sh

test: setup
	$(PY) -m pytest tests -q -p no:cacheprovider

demo: setup
	$(PY) demo/image_demo.py demo/images --out-dir outputs/demo \
		$(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) $(DEMO_ARGS)

# Every check runs (one failure does not hide the next); the target fails if any did.
lint: setup
	@rc=0; \
	echo '[lint] flake8'; $(PY) -m flake8 $(LINT_PATHS) || rc=1; \
	echo '[lint] isort --check-only'; $(PY) -m isort --check-only --diff $(LINT_PATHS) || rc=1; \
	echo '[lint] yapf --diff'; $(PY) -m yapf --diff --recursive --parallel $(LINT_PATHS) || rc=1; \
	echo '[lint] check-yaml'; $(PY) -m pre_commit_hooks.check_yaml $(YAML_FILES) || rc=1; \
	if [ $$rc -eq 0 ]; then echo '[lint] ok'; else echo '[lint] FAILED (fix: yapf -i / isort)'; fi; \
	exit $$rc
