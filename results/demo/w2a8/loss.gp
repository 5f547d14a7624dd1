# qtk: infoNCE loss after each Evol-Q block step (from log.jsonl); gnuplot results/demo/w2a8/loss.gp
$loss << EOD
0 25.8921687
1 25.8909506
2 25.8898116
3 25.8890351
4 25.8886624
5 25.8886624
6 25.8863612
7 25.8863612
8 25.8863612
9 25.8863612
10 25.8853725
11 25.8853725
12 25.8824884
EOD
$acc << EOD
EOD
set terminal pngcairo size 900,540 noenhanced
set output 'results/demo/w2a8/loss.png'
set title 'Evol-Q search: results/demo/w2a8'
set xlabel 'block step'
set ylabel 'infoNCE loss (calibration set)'
set format y '%.7g'
set grid
set key top right
plot $loss using 1:2 with linespoints title 'loss'
