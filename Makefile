# analyzer: common tasks. `make install demo` on a fresh machine analyses the bundled samples.
PYTHON ?= python3
SAMPLES := $(wildcard captures/*/capture.pcap*)

.PHONY: install test demo bench clean

# The kernels are compiled ahead of time when a C compiler is there (docs/performance.md);
# without one, analyze compiles them with numba on first use, so a failed build is not fatal.
install:
	$(PYTHON) -m pip install -q -e '.[test]'
	-$(PYTHON) -m analyzer.dissect.build_kernels

test:
	$(PYTHON) -m pytest -q

# Analyse every bundled sample session (capture + app.log + server.log) into its analysis/ folder.
demo:
	@test -n "$(SAMPLES)" || { echo "no sample sessions in captures/"; exit 1; }
	@for cap in $(SAMPLES); do \
		dir=$$(dirname $$cap); logs=""; \
		for log in $$dir/app.log $$dir/server.log; do [ -f $$log ] && logs="$$logs --logs $$log"; done; \
		phone=$$(cat $$dir/phone 2>/dev/null); \
		echo "== $$dir"; \
		analyze $$cap $$logs $${phone:+--phone $$phone} --out $$dir/analysis || exit 1; \
	done
	@analyze compare $(dir $(SAMPLES)) --out captures/comparison.html
	@echo "open captures/*/analysis/report.html (one per session) and captures/comparison.html"

bench:
	$(PYTHON) bench/run.py

clean:
	rm -rf captures/*/analysis .pytest_cache
