"""The `baobab` command line (info, bench, tune, explain, plot): private, not
part of baobab's API. Its entry point is baobab._cli.main:main (the `baobab`
console script and `python -m baobab`)."""
