# qtk: infoNCE loss after each Evol-Q block step (from log.jsonl); gnuplot results/demo/w3a8/loss.gp
$loss << EOD
0 25.7315608
1 25.7315608
2 25.7314588
3 25.7314588
4 25.7314588
5 25.7311013
6 25.7311013
7 25.7311013
8 25.7311013
9 25.7311013
10 25.7311013
11 25.7305855
12 25.7304857
EOD
$acc << EOD
EOD
set terminal pngcairo size 900,540 noenhanced
set output 'results/demo/w3a8/loss.png'
set title 'Evol-Q search: results/demo/w3a8'
set xlabel 'block step'
set ylabel 'infoNCE loss (calibration set)'
set format y '%.7g'
set grid
set key top right
plot $loss using 1:2 with linespoints title 'loss'
