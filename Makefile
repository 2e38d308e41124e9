# The two commands of the README. Both set up everything on a fresh machine.
.PHONY: demo test bench setup clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	.venv/bin/ysh demo

test: setup
	.venv/bin/python -m pytest

bench: setup
	.venv/bin/python benchmarks/run_all.py

clean:
	-.venv/bin/ysh services down
	rm -rf .ysh
