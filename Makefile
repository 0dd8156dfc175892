# The two commands of the README. Both install what is missing first.
.PHONY: demo test bench clean
demo:
	./scripts/demo.sh
test:
	./scripts/test.sh
bench:
	python3 tests/bench/bench_line_profiler.py
	python3 tests/bench/bench_native.py
	python3 tests/bench/bench_memory_usage.py
	python3 tests/bench/bench_objgraph.py
	python3 tests/bench/bench_leaks.py
	python3 tests/bench/bench_mprof.py
	python3 tests/bench/bench_peak.py
	python3 tests/bench/bench_pytest_plugin.py
	python3 tests/bench/bench_heap_walk.py
	python3 tests/bench/bench_attach.py
	python3 tests/bench/bench_line_instructions.py
clean:
	rm -rf build
