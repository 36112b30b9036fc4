# Two commands do all set-up on a fresh machine: `make bench ARCH=resnet18` and `make test`.
# The first call creates .venv and installs everything (torch pinned first: local wheels, no GB downloads).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

ARCH    ?= resnet18
RESULTS ?= results
# Optional overrides, passed through only when set: make bench ARCH=resnet50 DATASET=/data/plants EPOCHS=5 SIZE=224
OPTS = $(if $(DATASET),--dataset '$(DATASET)') $(if $(PROFILE),--profile $(PROFILE)) \
       $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(HEAD_EPOCHS),--head-epochs $(HEAD_EPOCHS)) \
       $(if $(FT_EPOCHS),--ft-epochs $(FT_EPOCHS)) $(if $(SIZE),--size $(SIZE)) $(if $(BS),--bs $(BS)) \
       $(if $(PCT),--pct $(PCT)) $(if $(LR),--lr $(LR)) $(if $(SEED),--seed $(SEED)) \
       $(if $(PRETRAINED),--pretrained $(PRETRAINED)) $(if $(WEIGHTS),--weights '$(WEIGHTS)') \
       $(if $(HEAD),--head $(HEAD)) $(if $(GROUPS),--layer-groups $(GROUPS)) $(if $(DEVICE),--device $(DEVICE)) \
       $(if $(ON_BAD_IMAGE),--on-bad-image $(ON_BAD_IMAGE)) $(if $(PRESIZE),--presize $(PRESIZE)) \
       --results-dir '$(RESULTS)' $(ARGS)

.PHONY: install bench list sweep race report speed test clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[test,mlflow]'
	touch $@

bench: $(STAMP)
	$(BIN)/bench run --arch $(ARCH) $(OPTS)

list: $(STAMP)
	$(BIN)/bench list

EXP      ?= quick
# The local worker pool: one server imports the libraries once and forks a fresh process per run, one 1-thread run
# per core (docs/benchmarks.md, "The worker pool"). EXECUTOR=ray runs on long-lived Ray actors (ARGS='--address ...').
EXECUTOR ?= local
# a race uses the same pool and the same thread policy, so a race and a sweep of one file share their runs
RACE_EXECUTOR ?= local
sweep: $(STAMP)
	$(BIN)/bench sweep experiments/$(EXP).yaml $(if $(DATASET),--dataset '$(DATASET)') --executor $(EXECUTOR) \
	  --results-dir '$(RESULTS)' $(ARGS)

# make race EXP=quick [SEEDS=0,1,2] [FOLDS=5] [ALPHA=0.05] [BUDGET=40]: the file's archs raced over (seed, fold) pairs
race: $(STAMP)
	$(BIN)/bench race experiments/$(EXP).yaml $(if $(DATASET),--dataset '$(DATASET)') --executor $(RACE_EXECUTOR) \
	  $(if $(SEEDS),--seeds $(SEEDS)) $(if $(FOLDS),--folds $(FOLDS)) $(if $(ALPHA),--alpha $(ALPHA)) \
	  $(if $(BUDGET),--budget $(BUDGET)) --results-dir '$(RESULTS)' $(ARGS)

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
