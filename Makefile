# Two commands do all set-up on a fresh machine: `make bench ARCH=resnet18` and `make test`.
# The first call creates .venv and installs everything, torch pinned first. PyPI's torch for Linux x86_64 is its
# CUDA build, whatever the machine: torch 1.2 GB + nvidia-* CUDA libraries 3.2 GB + triton 0.9 GB of a ~6.8 GB
# venv (docs/benchmarks.md, "Install"); on this kind of machine pip takes those wheels from local disk.
PYTHON ?= python3
SHELL  := /bin/bash
.SHELLFLAGS := -o pipefail -c
# This machine's pip config names extra file:// indexes that lack most packages, so pip warns once per package and
# index ("WARNING: Location 'file:///.../simple/<name>/' is ignored: ..."): 236 lines of an install. Only those
# lines are dropped; every other line, errors included, is shown, and pip's exit status stays the recipe's.
PIP_FILTER = 2>&1 | { grep -v -E "^WARNING: Location '[^']*' is ignored: " || true; }
# $(call pip_install,ARGS): `pip install --quiet ARGS` in the venv, echoed as that, its output through PIP_FILTER
EXTRAS = test,mlflow
pip_install = @echo "$(BIN)/pip install $(1)"; $(BIN)/pip install --quiet $(1) $(PIP_FILTER)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

ARCH    ?= resnet18
RESULTS ?= results
# Optional overrides, passed through only when set: make bench ARCH=resnet50 DATASET=/data/plants EPOCHS=5 SIZE=224
# ITEM_SIZE=224 (the item crop before batching; the article's 512 by default)
OPTS = $(if $(DATASET),--dataset '$(DATASET)') $(if $(PROFILE),--profile $(PROFILE)) \
       $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(HEAD_EPOCHS),--head-epochs $(HEAD_EPOCHS)) \
       $(if $(FT_EPOCHS),--ft-epochs $(FT_EPOCHS)) $(if $(SIZE),--size $(SIZE)) \
       $(if $(ITEM_SIZE),--item-size $(ITEM_SIZE)) $(if $(BS),--bs $(BS)) \
       $(if $(PCT),--pct $(PCT)) $(if $(LR),--lr $(LR)) $(if $(SEED),--seed $(SEED)) \
       $(if $(PRETRAINED),--pretrained $(PRETRAINED)) $(if $(WEIGHTS),--weights '$(WEIGHTS)') \
       $(if $(HEAD),--head $(HEAD)) $(if $(GROUPS),--layer-groups $(GROUPS)) $(if $(DEVICE),--device $(DEVICE)) \
       $(if $(ON_BAD_IMAGE),--on-bad-image $(ON_BAD_IMAGE)) $(if $(PRESIZE),--presize $(PRESIZE)) \
       --results-dir '$(RESULTS)' $(ARGS)

.PHONY: install bench list check sweep race report speed test clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(call pip_install,--upgrade pip)
	$(call pip_install,torch==2.14.1 torchvision==0.29.1)
	$(call pip_install,-e '.[$(EXTRAS)]')
	touch $@

bench: $(STAMP)
	$(BIN)/bench run --arch $(ARCH) $(OPTS)

list: $(STAMP)
	$(BIN)/bench list

# make check DATASET=/data/mine [BUDGET=10min] [ARCH=... SIZE=... any of bench's variables]: the dataset, its baseline
# and the time a run takes here, before training (writes nothing outside the cache)
check: $(STAMP)
	$(BIN)/bench check --arch $(ARCH) $(OPTS) \
	  $(if $(BUDGET),--budget $(BUDGET))

EXP      ?= quick
# The local worker pool: one server imports the libraries once and forks a fresh process per run, one 1-thread run
# per core (docs/benchmarks.md, "The worker pool"). EXECUTOR=ray runs on long-lived Ray actors (ARGS='--address ...').
EXECUTOR ?= local
# a race uses the same pool and the same thread policy, so a race and a sweep of one file share their runs
RACE_EXECUTOR ?= local
sweep: $(STAMP)
	$(BIN)/bench sweep experiments/$(EXP).yaml $(if $(DATASET),--dataset '$(DATASET)') --executor $(EXECUTOR) \
	  $(if $(SEEDS),--seeds $(SEEDS)) $(if $(FOLDS),--folds $(FOLDS)) --results-dir '$(RESULTS)' $(ARGS)

# make race EXP=quick [SEEDS=0,1,2] [FOLDS=5] [ALPHA=0.05] [MARGIN=0.005] [BUDGET=40]: archs raced over (seed, fold)
race: $(STAMP)
	$(BIN)/bench race experiments/$(EXP).yaml $(if $(DATASET),--dataset '$(DATASET)') --executor $(RACE_EXECUTOR) \
	  $(if $(SEEDS),--seeds $(SEEDS)) $(if $(FOLDS),--folds $(FOLDS)) $(if $(ALPHA),--alpha $(ALPHA)) \
	  $(if $(MARGIN),--margin $(MARGIN)) $(if $(BUDGET),--budget $(BUDGET)) --results-dir '$(RESULTS)' $(ARGS)

# make report [EXP=quick] [FAMILY=resnet]: EXP filters only when given (the sweep's default EXP=quick does not)
REPORT_EXP = $(if $(filter command line environment,$(origin EXP)),$(EXP))
report: $(STAMP)
	$(BIN)/bench report --results-dir '$(RESULTS)' $(if $(REPORT_EXP),--experiment '$(REPORT_EXP)') \
	  $(if $(FAMILY),--family '$(FAMILY)') $(ARGS)

speed: $(STAMP)
	$(BIN)/bench speed --arch $(ARCH) $(if $(SIZE),--size $(SIZE)) $(if $(BS),--bs $(BS)) --results-dir '$(RESULTS)' $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
