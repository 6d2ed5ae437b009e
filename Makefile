# make demo : create .venv (MPI from PyPI), build baobab, run info + an allreduce sweep on 4 ranks
# make test : the same set-up, then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
NP     ?= 4
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: demo test venv build cpp-test test-openmpi clean

$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q mpich mpi4py numpy h5py matplotlib ml_dtypes nanobind scikit-build-core cmake ninja \
	    pytest pytest-timeout hypothesis yt scipy networkx
	touch $@

venv: $(VENV)/.deps

build: venv
	$(PIP) install -q --no-build-isolation --no-deps .

demo: build
	mpiexec -n $(NP) $(VENV)/bin/baobab info
	mpiexec -n $(NP) $(VENV)/bin/baobab bench allreduce -b 8 -e 16M -f 8

cpp-test: venv
	cmake -S . -B build/cpp -G Ninja -DBAOBAB_PYTHON=OFF -DBAOBAB_BUILD_TESTS=ON \
	    -DMPI_C_COMPILER=$(abspath $(VENV))/bin/mpicc -DPython_EXECUTABLE=$(abspath $(PY)) >/dev/null
	cmake --build build/cpp
	ctest --test-dir build/cpp --output-on-failure

# PyTorch (CPU) is the LLM app's reference in the tests only, never a dependency of baobab
$(VENV)/.torch: $(VENV)/.deps
	$(PIP) install -q torch==2.13.0
	touch $@

test: build cpp-test $(VENV)/.torch
	$(PY) -m pytest -q tests

# The second MPI stack: Debian's Open MPI (apt-get install libopenmpi-dev openmpi-bin),
# the binary mpi4py wheel, the core rebuilt against /usr/bin/mpicc, and h5py built from source
# against Debian's parallel HDF5 (apt-get install libhdf5-openmpi-dev pkg-config).
OMPI_VENV ?= .venv-openmpi
HDF5_OPENMPI_DIR ?= /usr/lib/$(shell gcc -dumpmachine)/hdf5/openmpi
$(OMPI_VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(OMPI_VENV)
	$(OMPI_VENV)/bin/python -m pip install -q --upgrade pip
	$(OMPI_VENV)/bin/python -m pip install -q mpi4py numpy ml_dtypes matplotlib nanobind scikit-build-core cmake ninja \
	    pytest pytest-timeout hypothesis yt scipy networkx "Cython>=3" pkgconfig "setuptools>=77"
	# parallel h5py against Debian's libhdf5-openmpi-dev (never the serial PyPI wheel here);
	# no build isolation: with it, h5py's backend pulls a source-only mpi4py and hangs
	CC=/usr/bin/mpicc HDF5_MPI=ON HDF5_DIR=$(HDF5_OPENMPI_DIR) \
	    $(OMPI_VENV)/bin/python -m pip install -q --no-build-isolation --no-binary=h5py h5py
	$(OMPI_VENV)/bin/python -c "import h5py, sys; sys.exit(0 if h5py.get_config().mpi else 'h5py without MPI')"
	touch $@

test-openmpi: $(OMPI_VENV)/.deps
	MPICC=/usr/bin/mpicc $(OMPI_VENV)/bin/python -m pip install -q --no-build-isolation --no-deps \
	    --config-settings=build-dir=build/openmpi .
	OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 BAOBAB_TEST_MPIEXEC=/usr/bin/mpiexec \
	    $(OMPI_VENV)/bin/python -m pytest -q tests/test_api.py tests/test_coll_mpi.py tests/test_errors_mpi.py \
	    tests/test_nonblocking_mpi.py tests/test_import.py tests/test_cli.py tests/test_datatype.py \
	    tests/test_p2p_mpi.py tests/test_cluster.py tests/test_slurm.py \
	    tests/test_io.py tests/test_checkpoint.py tests/test_nbody_app.py \
	    tests/test_faults_core.py tests/test_faults_cli.py tests/test_faults_io.py tests/test_faults_nbody.py \
	    tests/test_faults_llm.py tests/test_llm_dp.py tests/test_device_coll.py tests/test_graph_bfs.py tests/test_graph_sssp.py tests/test_graph_analytics.py tests/test_faults_graph.py

clean:
	rm -rf build dist *.egg-info
