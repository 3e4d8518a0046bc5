#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Plot what "mmctl top --log DIR" recorded: for each VM, its balloon target
# against its used memory (<host>_<vm>.png), and for each host its free
# memory (<host>.png). Needs gnuplot (Debian: gnuplot-nox).
set -euo pipefail

dir=${1:?usage: plot-demo.sh DIR}
command -v gnuplot >/dev/null || { echo "plot-demo.sh: gnuplot is missing" >&2; exit 1; }

for log in "$dir"/*_*.log; do
	[[ -e $log ]] || continue
	name=$(basename "$log" .log)
	gnuplot <<GP
set terminal pngcairo noenhanced size 900,450 font "sans,10"
set output "$dir/$name.png"
set title "$name: target vs used (MiB)"
set xlabel "seconds"
set ylabel "MiB"
set key top left
set grid
plot "$log" using 1:2 with lines lw 2 title "target", \
     "$log" using 1:3 with lines lw 2 title "used", \
     "$log" using 1:(\$3+\$4) with lines dt 2 title "guest size"
GP
done
for log in "$dir"/*.log; do
	name=$(basename "$log" .log)
	[[ $name == *_* ]] && continue
	gnuplot <<GP
set terminal pngcairo noenhanced size 900,300 font "sans,10"
set output "$dir/$name.png"
set title "host $name: free memory (MiB)"
set xlabel "seconds"
set ylabel "MiB"
set grid
plot "$log" using 1:2 with lines lw 2 title "free"
GP
done
ls "$dir"/*.png
