# qtk: infoNCE loss after each Evol-Q block step (from log.jsonl); gnuplot results/demo/w4a8/loss.gp
$loss << EOD
0 25.7166212
1 25.7165073
2 25.7164596
3 25.7162452
4 25.7161458
5 25.7161074
6 25.7158582
7 25.7158582
8 25.7158582
9 25.7158582
10 25.7158582
11 25.7158582
12 25.7158504
EOD
$acc << EOD
EOD
set terminal pngcairo size 900,540 noenhanced
set output 'results/demo/w4a8/loss.png'
set title 'Evol-Q search: results/demo/w4a8'
set xlabel 'block step'
set ylabel 'infoNCE loss (calibration set)'
set format y '%.7g'
set grid
set key top right
plot $loss using 1:2 with linespoints title 'loss'
