# The two commands of the README. Both set up everything on a fresh machine.
.PHONY: demo test bench setup clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	.venv/bin/ysh demo

test: setup
	.venv/bin/python -m pytest

bench: setup
	.venv/bin/python benchmarks/catalog.py
	.venv/bin/python benchmarks/tariffs.py
	.venv/bin/python benchmarks/tariffs_cdc.py
	.venv/bin/python benchmarks/proposals.py
	.venv/bin/python benchmarks/om.py
	.venv/bin/python benchmarks/om_evaluation.py
	.venv/bin/python benchmarks/rag.py

clean:
	-.venv/bin/ysh services down
	rm -rf .ysh
