# The two commands of the README. Each sets up ./.venv first (idempotent).
PY := .venv/bin/python
CHECKPOINT ?=
DEMO_ARGS ?=

.PHONY: setup test demo

setup:
	@bash tools/setup_env.sh

test: setup
	$(PY) -m pytest tests -q -p no:cacheprovider

demo: setup
	$(PY) demo/image_demo.py demo/images --out-dir outputs/demo \
		$(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) $(DEMO_ARGS)
