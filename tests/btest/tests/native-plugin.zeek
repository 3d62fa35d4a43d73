# The native engine's plugin loads, with its analyzer, configuration function and event.
# @TEST-EXEC: zeek -NN Cato::Native | sed 's/version [0-9.]*/version X/' > output
# @TEST-EXEC: btest-diff output
