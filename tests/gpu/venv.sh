# Sourced by run.sh and debug.sh on a lent GPU machine: a venv at /tmp/bvenv
# whose prefix holds MPICH (mpi4py looks for libmpi there), layered over the
# image's Python environment (cupy, nanobind, scikit-build-core, pytest), put
# first on PATH. Needs the carried wheels in .whl (see run.sh).
base_site=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
python3 -m venv /tmp/bvenv || exit 1
venv_site=$(/tmp/bvenv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# wheels first: with the image's packages visible pip would call them installed
/tmp/bvenv/bin/python -m pip install -q --no-index --no-deps .whl/*.whl || exit 1
echo "$base_site" > "$venv_site/image_site.pth"
export PATH=/tmp/bvenv/bin:$PATH
